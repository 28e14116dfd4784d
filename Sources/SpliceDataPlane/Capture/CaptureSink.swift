import Foundation
import SpliceCapture
import SpliceCore
import Synchronization

/// One capture reader: the pcapng file being written for it, shared by the sessions it
/// records (one, or every session of a listener, on any event loop).
///
/// Sessions call in from their loops; the lock is taken once per relayed read. Packets go
/// out only while the reader's buffer has room, so a reader that stops reading costs its
/// sessions a lock and a counter per read and never slows them.
public final class CaptureSink: Sendable {
    /// Capture id.
    public let id: CaptureID
    /// The listener recorded, nil for a capture of one session.
    public let listener: ListenerID?
    /// What is recorded.
    public let request: CaptureRequest
    /// When the capture started.
    public let startedAt: Date

    private struct State {
        var writer: CaptureWriter<CaptureKey>
        var sessions: Set<SessionID> = []
        /// Synthetic client ports for hop points, counting down from the top of the range.
        var nextHopPort: UInt16 = 65535
        var closed = false
    }

    private let output: any CaptureOutput
    private let state: Mutex<State>
    /// Which directions' bytes are recorded, looked up on every relayed read.
    private let directions: (clientToServer: Bool, serverToClient: Bool)

    init(id: CaptureID, listener: ListenerID?, request: CaptureRequest, output: any CaptureOutput) {
        self.id = id
        self.listener = listener
        self.request = request
        self.startedAt = Date()
        self.output = output
        self.directions = (request.directions != .serverToClient, request.directions != .clientToServer)
        var writer = CaptureWriter<CaptureKey>(application: "splicegate", time: Self.now())
        output.append(writer.take())
        state = Mutex(State(writer: writer))
    }

    /// Whether the capture still records: not closed, and its reader is still there.
    var isActive: Bool {
        !output.isReleased && !state.withLock { $0.closed }
    }

    /// Whether bytes of `direction` are recorded.
    func records(_ direction: Direction) -> Bool {
        direction == .clientToServer ? directions.clientToServer : directions.serverToClient
    }

    /// Whether a capture point is recorded.
    func records(_ point: CapturePoint) -> Bool {
        switch point {
        case .client, .server: true
        case .hopIn, .hopOut: request.points == .hops
        }
    }

    /// The figures the session object lists.
    public var snapshot: CaptureSnapshot {
        let interfaces = state.withLock { $0.writer.interfaces }
        let received = interfaces.reduce(0) { $0 + $1.received }
        let dropped = interfaces.reduce(0) { $0 + $1.dropped }
        return CaptureSnapshot(id: id, listener: listener, request: request, startedAt: startedAt,
                               packets: received - dropped, dropped: dropped)
    }

    // MARK: recording (session loops)

    /// Counts a session in.
    func join(_ session: SessionID) {
        state.withLock { _ = $0.sessions.insert(session) }
    }

    /// Whether a connection has been opened.
    func contains(_ key: CaptureKey) -> Bool {
        state.withLock { $0.writer.contains(key) }
    }

    /// Opens a connection and writes its handshake. A hop point's client side gets a port of
    /// its own, so that each point is a TCP stream of its own in Wireshark.
    func open(_ key: CaptureKey, initiator: CaptureEndpoint, responder: CaptureEndpoint,
              offsets: (initiator: UInt64, responder: UInt64), syntheticPort: Bool) {
        record { state, room in
            guard !state.writer.contains(key) else { return }
            var initiator = initiator
            if syntheticPort {
                initiator = initiator.with(port: state.nextHopPort)
                // Stay above the kernel's ephemeral range, where no real client port sits.
                state.nextHopPort = state.nextHopPort <= 61001 ? 65535 : state.nextHopPort - 1
            }
            state.writer.open(key, interface: key.point.name, initiator: initiator, responder: responder, offsets: offsets)
            state.writer.handshake(key, time: Self.now(), room: &room)
        }
    }

    /// Bytes one side of a connection sent.
    func send(_ bytes: UnsafeRawBufferPointer, from side: ConversationSide, on key: CaptureKey) {
        record { state, room in state.writer.send(bytes, from: side, on: key, time: Self.now(), room: &room) }
    }

    /// A side's FIN.
    func finish(from side: ConversationSide, on key: CaptureKey) {
        record { state, room in state.writer.finish(from: side, on: key, time: Self.now(), room: &room) }
    }

    /// A comment on the next packet `side` sends on each of the session's connections.
    func comment(_ text: String, from side: ConversationSide, session: SessionID) {
        state.withLock { state in
            for key in state.writer.keys where key.session == session {
                state.writer.comment(text, from: side, on: key)
            }
        }
    }

    /// Ends the session's connections (a reset from the gateway's side when the stream was
    /// cut, FINs otherwise); a capture of one session ends with it.
    func sessionEnded(_ session: SessionID, cut: Bool) {
        record { state, room in
            let time = Self.now()
            for key in state.writer.keys where key.session == session {
                // The gateway is the responder on the client leg, the initiator elsewhere.
                let gateway: ConversationSide = key.point == .client ? .responder : .initiator
                if cut {
                    state.writer.reset(from: gateway, on: key, time: time, room: &room)
                } else {
                    for side in [gateway, gateway.peer] {
                        state.writer.finish(from: side, on: key, time: time, room: &room)
                    }
                }
                state.writer.forget(key)
            }
            state.sessions.remove(session)
        }
        if listener == nil { close() }
    }

    /// Forgets a connection without ending it (its point was replaced).
    func forget(_ key: CaptureKey, resetBy side: ConversationSide) {
        record { state, room in
            state.writer.reset(from: side, on: key, time: Self.now(), room: &room)
            state.writer.forget(key)
        }
    }

    /// Ends the file: statistics blocks, then the end of the stream.
    public func close() {
        let wasOpen = state.withLock { state in
            guard !state.closed else { return false }
            state.closed = true
            state.writer.close(time: Self.now())
            let bytes = state.writer.take()
            if !bytes.isEmpty { output.append(bytes) }
            return true
        }
        if wasOpen { output.finish() }
    }

    /// Runs a change under the lock with the reader's room, then queues what it wrote.
    private func record(_ change: (inout State, inout Int) -> Void) {
        state.withLock { state in
            guard !state.closed else { return }
            var room = output.room
            change(&state, &room)
            if !state.writer.isDrained { output.append(state.writer.take()) }
        }
    }

    /// Microseconds since the epoch.
    static func now() -> Pcapng.Microseconds {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1000
    }
}
