import Foundation
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane

/// The handoff protocol, version 3 (issue 15; version 1 carried plain sessions only,
/// version 2 had no `released`: both are refused now).
///
/// Over the predecessor's `--handoff-socket` (a Unix stream socket, mode 0600), in frames
/// (`HandoffFrame`):
///
/// 1. successor → `hello` {version, pid}
/// 2. predecessor → `refused` {reason} and closes, when the version differs or something
///    cannot move yet (a hop being spliced or removed, a capture, a session still dialing
///    or with an EOF being passed on, an admin response in flight); it then serves on as
///    before. Otherwise it stops accepting and reading, and sends:
/// 3. `admin` {admin_token_sha256: the hex SHA-256 of the admin token, or null without one;
///    a successor whose own differs aborts} (1 descriptor: the admin API's listening socket), one `mediator` {spec} per
///    registered mediator, one `listener` {id, spec, created_at_us, total_sessions,
///    upstream_failures, rejected_sessions} (1 descriptor) per listener, one `session`
///    {id, listener, client, server, opened_at_us, bytes_to_server, bytes_to_client,
///    client_pending, server_pending, client_read, server_read, hops, splits, offsets} per
///    session: `hops` in stack order, each {id, mediator, target, request, legs:
///    [{direction, spliced_at, fed, emitted, pending, pid}]} (`pid` for an exec
///    mediator, else null); `splits` in order, dropped ones
///    too, each {id, request, state, reason, replica, legs: [{direction, from_offset, sent,
///    discarded, unsent_at_drop, pending, backlog, backlog_start}]}; `offsets` each
///    direction's link offsets; `input_ended`, `output_shut` (per descriptor's socket: the
///    peer sent EOF, its output was shut; empty when neither) and `finished` (directions
///    whose EOF reached the endpoint) for a half-closed session. Descriptors: client, server, each hop leg's (a TCP
///    mediator's socket; an exec mediator's stdout, stdin and pidfd), one per leg of a
///    split not dropped. Payload: the bytes queued for the client, for the server, for
///    each hop leg, for each split leg, then each split leg's held replica output. Then
///    `end` {next_session, next_hop, next_split, next_listener, next_capture, sessions,
///    listeners, pid}.
/// 4. successor → `ack` {sessions, listeners} once it holds everything, or `abort` {reason}.
/// 5. predecessor → `released` once it has let go of everything (admin connections
///    finished, its copies of the descriptors closed quietly, its socket file removed); it
///    then closes the connection and exits 0. On anything but a valid `ack` (abort, EOF, a
///    bad count, the deadline) it closes the connection FIRST and then resumes every
///    session and listener, logging why. After a valid `ack` and the admin drain, just
///    before letting go, it checks that the successor is still there (the connection not
///    closed on its side, its process, by SO_PEERCRED, not exited); if not, it resumes
///    too. A successor dying between that check and `released` (closing this process's
///    copies, then the send) is the one case left that loses the sessions.
///
/// The successor reads, writes, accepts and serves the admin socket only after `released`,
/// and waits for it as long as the connection stays open (a stopped predecessor lets go
/// or resumes when it runs again): never do two processes serve the same sockets. A
/// connection that closes without `released` means the predecessor resumed, unless it is
/// dead (the `end` frame's pid, given a second to show its exit after the EOF): then
/// nobody else holds the sockets and the successor takes over.
///
/// A new version is a new number: a predecessor refuses a `hello` it does not speak.
public enum HandoffProtocol {
    /// The version this build speaks.
    public static let version: Int64 = 3
}

/// One message of the protocol.
public enum HandoffMessage: Sendable {
    case hello(version: Int64, pid: Int32)
    case refused(reason: String)
    /// The admin socket, and the SHA-256 (hex) of the admin token it requires (nil: none).
    case admin(fd: Int32, tokenDigest: String?)
    case mediator(MediatorSpec)
    case listener(HandoffListener)
    case session(HandoffSession)
    case end(HandoffCounters, sessions: Int, listeners: Int, pid: Int32)
    case ack(sessions: Int, listeners: Int)
    case abort(reason: String)
    case released

    /// The descriptors the message owns.
    public var descriptors: [Int32] {
        switch self {
        case .admin(let fd, _): [fd]
        case .listener(let listener): [listener.fd]
        case .session(let session): session.fds
        default: []
        }
    }

    /// The message as a frame.
    public var frame: HandoffFrame {
        switch self {
        case .hello(let version, let pid):
            return HandoffFrame(type: "hello", ["version": .int(version), "pid": .int(Int64(pid))])
        case .refused(let reason):
            return HandoffFrame(type: "refused", ["reason": .string(reason)])
        case .admin(let fd, let tokenDigest):
            return HandoffFrame(type: "admin", ["admin_token_sha256": tokenDigest.map(JSON.string) ?? .null], fds: [fd])
        case .mediator(let spec):
            return HandoffFrame(type: "mediator", ["spec": spec.json])
        case .listener(let listener):
            let state = listener.state
            let fields: KeyValuePairs<String, JSON> = [
                "id": .string("\(state.id)"), "spec": state.spec.json,
                "created_at_us": .int(Self.microseconds(state.createdAt)),
                "total_sessions": .int(Int64(bitPattern: state.totalSessions)),
                "upstream_failures": .int(Int64(bitPattern: state.upstreamFailures)),
                "rejected_sessions": .int(Int64(bitPattern: state.rejectedSessions)),
            ]
            return HandoffFrame(type: "listener", fields, fds: [listener.fd])
        case .session(let session):
            let state = session.state
            let fields: KeyValuePairs<String, JSON> = [
                "id": .string("\(state.id)"), "listener": .string("\(state.listener)"),
                "client": .string(state.client), "server": .string(state.server),
                "opened_at_us": .int(Self.microseconds(state.openedAt)),
                "bytes_to_server": .int(Int64(bitPattern: state.bytes.clientToServer)),
                "bytes_to_client": .int(Int64(bitPattern: state.bytes.serverToClient)),
                "client_pending": .int(Int64(state.clientPending.count)),
                "server_pending": .int(Int64(state.serverPending.count)),
                "client_read": .int(Int64(bitPattern: state.reads.clientToServer)),
                "server_read": .int(Int64(bitPattern: state.reads.serverToClient)),
                "hops": .array(state.hops.map(\.json)), "splits": .array(state.splits.map(\.json)),
                "offsets": HandoffHopState.json(offsets: state.linkOffsets),
                "input_ended": .array(state.inputEnded.map { .bool($0) }),
                "output_shut": .array(state.outputShut.map { .bool($0) }),
                "finished": .array(Direction.allCases.filter(state.finished.contains).map { .string($0.rawValue) }),
            ]
            return HandoffFrame(type: "session", fields, payload: state.clientPending + state.serverPending + state.legBytes,
                                fds: session.fds)
        case .end(let counters, let sessions, let listeners, let pid):
            let fields: KeyValuePairs<String, JSON> = [
                "next_session": .int(Int64(bitPattern: counters.nextSession)),
                "next_hop": .int(Int64(bitPattern: counters.nextHop)),
                "next_split": .int(Int64(bitPattern: counters.nextSplit)),
                "next_listener": .int(Int64(bitPattern: counters.nextListener)),
                "next_capture": .int(Int64(bitPattern: counters.nextCapture)),
                "sessions": .int(Int64(sessions)), "listeners": .int(Int64(listeners)), "pid": .int(Int64(pid)),
            ]
            return HandoffFrame(type: "end", fields)
        case .ack(let sessions, let listeners):
            return HandoffFrame(type: "ack", ["sessions": .int(Int64(sessions)), "listeners": .int(Int64(listeners))])
        case .abort(let reason):
            return HandoffFrame(type: "abort", ["reason": .string(reason)])
        case .released:
            return HandoffFrame(type: "released")
        }
    }

    /// Reads a frame; throws, naming the field, for one that is not a valid message. The
    /// frame's descriptors belong to the message (or, on a throw, still to the frame).
    public init(_ frame: HandoffFrame) throws(HandoffError) {
        let fields = Fields(frame)
        switch frame.type {
        case "hello":
            self = .hello(version: try fields.int("version"), pid: try fields.pid("pid"))
        case "refused":
            self = .refused(reason: try fields.string("reason"))
        case "admin":
            // Required: a predecessor that does not say whether it requires a token could
            // have its admin API served without one.
            let digest = try fields.value("admin_token_sha256")
            guard digest.isNull || digest.string != nil else {
                throw HandoffError("admin: field 'admin_token_sha256' must be a string or null")
            }
            self = .admin(fd: try fields.fd(0), tokenDigest: digest.string)
        case "mediator":
            do {
                self = .mediator(try MediatorSpec(json: try fields.value("spec"), allowExec: true))
            } catch let error as HandoffError {
                throw error
            } catch {
                throw HandoffError("mediator: \(error)")
            }
        case "listener":
            let spec: ListenerSpec
            do {
                spec = try ListenerSpec(json: try fields.value("spec"))
            } catch let error as HandoffError {
                throw error
            } catch {
                throw HandoffError("listener spec: \(error)")
            }
            self = .listener(HandoffListener(state: HandoffListenerState(
                id: try fields.listenerID("id"), spec: spec, createdAt: try fields.date("created_at_us"),
                totalSessions: try fields.count("total_sessions"), upstreamFailures: try fields.count("upstream_failures"),
                rejectedSessions: try fields.count("rejected_sessions")), fd: try fields.fd(0)))
        case "session":
            // Each at most the payload's limit, so the sum cannot overflow.
            let clientPending = try fields.size("client_pending", max: HandoffFrame.maxPayloadBytes)
            let serverPending = try fields.size("server_pending", max: HandoffFrame.maxPayloadBytes)
            guard clientPending + serverPending <= frame.payload.count else {
                throw HandoffError("session: pending counts \(clientPending) + \(serverPending) exceed the payload's \(frame.payload.count) bytes")
            }
            guard let id = SessionID(try fields.string("id")) else { throw HandoffError("session: bad id") }
            var state = HandoffSessionState(
                id: id, listener: try fields.listenerID("listener"), client: try fields.string("client"),
                server: try fields.string("server"), openedAt: try fields.date("opened_at_us"),
                bytes: ByteCounts(clientToServer: try fields.count("bytes_to_server"),
                                  serverToClient: try fields.count("bytes_to_client")),
                clientPending: Array(frame.payload[0..<clientPending]),
                serverPending: Array(frame.payload[clientPending..<(clientPending + serverPending)]),
                reads: ByteCounts(clientToServer: try fields.count("client_read"),
                                  serverToClient: try fields.count("server_read")),
                hops: try HandoffHopState.hops(try fields.value("hops")),
                splits: try HandoffSplitState.splits(try fields.value("splits")),
                linkOffsets: try HandoffHopState.offsets(try fields.value("offsets")))
            state.inputEnded = try fields.flags("input_ended")
            state.outputShut = try fields.flags("output_shut")
            for name in try fields.value("finished").array ?? [] {
                guard let direction = name.string.flatMap(Direction.init(rawValue:)) else {
                    throw HandoffError("session: field 'finished' must list directions")
                }
                state.finished.insert(direction)
            }
            guard state.fillLegBytes(from: frame.payload[(clientPending + serverPending)...]) else {
                throw HandoffError("session: the legs' byte counts differ from the payload's \(frame.payload.count) bytes")
            }
            guard frame.fds.count == state.descriptorCount else {
                throw HandoffError("session: \(frame.fds.count) descriptors where its legs need \(state.descriptorCount)")
            }
            self = .session(HandoffSession(state: state, clientFD: try fields.fd(0), serverFD: try fields.fd(1),
                                           legFDs: Array(frame.fds[2...])))
        case "end":
            self = .end(HandoffCounters(
                nextSession: try fields.count("next_session"), nextHop: try fields.count("next_hop"),
                nextSplit: try fields.count("next_split"), nextListener: try fields.count("next_listener"),
                nextCapture: try fields.count("next_capture")),
                sessions: try fields.size("sessions", max: Int(Int32.max)),
                listeners: try fields.size("listeners", max: Int(Int32.max)), pid: try fields.pid("pid"))
        case "ack":
            self = .ack(sessions: try fields.size("sessions", max: Int(Int32.max)),
                        listeners: try fields.size("listeners", max: Int(Int32.max)))
        case "abort":
            self = .abort(reason: try fields.string("reason"))
        case "released":
            self = .released
        default:
            throw HandoffError("unknown message type '\(frame.type)'")
        }
    }

    private static func microseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}

/// A frame's fields, read with the message type in every complaint.
private struct Fields {
    let frame: HandoffFrame

    init(_ frame: HandoffFrame) { self.frame = frame }

    func value(_ key: String) throws(HandoffError) -> JSON {
        guard let value = frame.header[key] else { throw HandoffError("\(frame.type): field '\(key)' is missing") }
        return value
    }

    func int(_ key: String) throws(HandoffError) -> Int64 {
        guard let value = try value(key).int else { throw HandoffError("\(frame.type): field '\(key)' must be an integer") }
        return value
    }

    /// An unsigned counter (sent as its bit pattern).
    func count(_ key: String) throws(HandoffError) -> UInt64 {
        UInt64(bitPattern: try int(key))
    }

    /// A count of things or bytes: an integer from 0 to `max` (never trapping on one that
    /// does not fit).
    func size(_ key: String, max: Int) throws(HandoffError) -> Int {
        guard let value = Int(exactly: try int(key)), (0...max).contains(value) else {
            throw HandoffError("\(frame.type): field '\(key)' must be an integer from 0 to \(max)")
        }
        return value
    }

    /// A process id (positive, a pid_t).
    func pid(_ key: String) throws(HandoffError) -> Int32 {
        guard let value = Int32(exactly: try int(key)), value > 0 else {
            throw HandoffError("\(frame.type): field '\(key)' must be a process id")
        }
        return value
    }

    func string(_ key: String) throws(HandoffError) -> String {
        guard let value = try value(key).string else { throw HandoffError("\(frame.type): field '\(key)' must be a string") }
        return value
    }

    func date(_ key: String) throws(HandoffError) -> Date {
        Date(timeIntervalSince1970: Double(try int(key)) / 1_000_000)
    }

    /// An array of booleans.
    func flags(_ key: String) throws(HandoffError) -> [Bool] {
        guard let items = try value(key).array, let flags = Optional(items.compactMap(\.bool)), flags.count == items.count
        else { throw HandoffError("\(frame.type): field '\(key)' must be an array of booleans") }
        return flags
    }

    func listenerID(_ key: String) throws(HandoffError) -> ListenerID {
        guard let id = ListenerID(try string(key)) else { throw HandoffError("\(frame.type): field '\(key)' must be a listener id") }
        return id
    }

    func fd(_ index: Int) throws(HandoffError) -> Int32 {
        guard index < frame.fds.count else {
            throw HandoffError("\(frame.type): descriptor \(index + 1) of the frame is missing")
        }
        return frame.fds[index]
    }
}
