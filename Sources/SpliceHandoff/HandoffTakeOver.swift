import Foundation
import Logging
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane
#if canImport(Glibc)
import Glibc
#endif

/// The successor's side of a handoff (`--take-over PATH`): receives everything from the
/// running gateway, then acknowledges (see `HandoffProtocol`). Blocking, for start-up.
public final class HandoffTakeOver {
    /// How long the predecessor may take between two frames.
    static let frameTimeoutMilliseconds = 30_000

    /// The predecessor's admin listening socket.
    public private(set) var adminFD: Int32 = -1
    /// The SHA-256 (hex) of the admin token the predecessor requires; nil without one.
    public private(set) var adminTokenDigest: String?
    public private(set) var mediators: [MediatorSpec] = []
    public private(set) var listeners: [HandoffListener] = []
    public private(set) var sessions: [HandoffSession] = []
    public private(set) var counters = HandoffCounters(nextSession: 1, nextHop: 1, nextSplit: 1, nextListener: 1, nextCapture: 1)
    /// The predecessor's process id.
    public private(set) var predecessor: Int32 = 0
    private let channel: HandoffChannel
    /// Set once `takeDescriptors` gave the listeners' and sessions' descriptors away.
    private var descriptorsTaken = false
    private let logger: Logger

    /// Connects to `path`, says hello and receives everything; throws (every descriptor
    /// received closed) if the predecessor refuses or the exchange breaks off.
    public init(path: String, logger: Logger) throws(HandoffError) {
        self.logger = logger
        channel = try HandoffChannel.connect(to: path)
        channel.setReceiveTimeout(milliseconds: Self.frameTimeoutMilliseconds)
        do throws(HandoffError) {
            try channel.send(HandoffMessage.hello(version: HandoffProtocol.version, pid: getpid()).frame)
            while true {
                switch try channel.receiveMessage() {
                case .refused(let reason):
                    throw HandoffError("the running gateway refused the handoff: \(reason)")
                case .admin(let fd, let tokenDigest):
                    if adminFD >= 0 { close(adminFD) }
                    adminFD = fd
                    adminTokenDigest = tokenDigest
                case .mediator(let spec):
                    mediators.append(spec)
                case .listener(let listener):
                    listeners.append(listener)
                case .session(let session):
                    sessions.append(session)
                case .end(let counters, let sessionCount, let listenerCount, let pid):
                    guard sessionCount == sessions.count, listenerCount == listeners.count else {
                        throw HandoffError("the predecessor announced \(sessionCount) sessions and \(listenerCount) listeners, \(sessions.count) and \(listeners.count) arrived")
                    }
                    guard adminFD >= 0 else { throw HandoffError("the predecessor sent no admin socket") }
                    self.counters = counters
                    predecessor = pid
                    return
                case .hello, .ack, .abort, .released:
                    throw HandoffError("unexpected message from the predecessor")
                }
            }
        } catch {
            try? channel.send(HandoffMessage.abort(reason: error.description).frame)
            closeReceived()
            channel.close()
            throw error
        }
    }

    /// The listeners' and sessions' descriptors are the caller's from now on (a gateway
    /// adopting them closes those it cannot take): an abort no longer closes them.
    public func takeDescriptors() -> (listeners: [HandoffListener], sessions: [HandoffSession]) {
        defer { descriptorsTaken = true }
        return (listeners, sessions)
    }

    /// The admin socket, now the caller's to close (an abort no longer closes it).
    public func takeAdminFD() -> Int32 {
        defer { adminFD = -1 }
        return adminFD
    }

    /// Tells the predecessor that everything arrived: from here on the sessions are this
    /// process's (the predecessor exits). Throws if it cannot be told.
    public func acknowledge() throws(HandoffError) {
        try channel.send(HandoffMessage.ack(sessions: sessions.count, listeners: listeners.count).frame)
    }

    /// Gives up before acknowledging: the predecessor resumes everything.
    public func abort(_ reason: String) {
        try? channel.send(HandoffMessage.abort(reason: reason).frame)
        closeReceived()
        channel.close()
    }

    /// Waits for the predecessor's `released`, then closes the connection. Until this
    /// returns `.released` or `.predecessorGone`, the sockets must not be touched: the
    /// predecessor may still serve them.
    ///
    /// Only the connection's end decides: a predecessor that is slow or stopped (SIGSTOP)
    /// after the ack may still let go, or resume, whenever it runs again, and a successor
    /// that gave up in between would leave the sessions to nobody. So this waits for as long
    /// as the connection stays open, saying so every `logInterval`.
    public func awaitRelease(logInterval: Duration) -> HandoffRelease {
        defer { channel.close() }
        let (seconds, attoseconds) = logInterval.components
        let milliseconds = max(1, Int(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        let start = ContinuousClock.now
        while !channel.awaitInput(milliseconds: milliseconds) {
            logger.warning("handoff: still waiting for the predecessor to release everything (stopped, or very slow?)", metadata: [
                "from_pid": "\(predecessor)", "waited": "\(ContinuousClock.now - start)",
            ])
        }
        // Something arrived, or the connection ended: `released` is one small frame, sent in
        // one piece, so the receive does not wait long either way.
        channel.setReceiveTimeout(milliseconds: 0)
        let why: String
        do throws(HandoffError) {
            if case .released = try channel.receiveMessage() { return .released }
            why = "the predecessor answered something other than released"
        } catch {
            why = error.description
        }
        // No `released`: the predecessor closes the connection before it resumes, so if it
        // lives on it serves the sockets again; if it is gone, nobody else holds them.
        return PredecessorProcess.isAlive(predecessor) ? .predecessorResumed(why) : .predecessorGone(why)
    }

    private func closeReceived() {
        var fds = descriptorsTaken ? [] : listeners.map(\.fd) + sessions.flatMap(\.fds)
        if adminFD >= 0 { fds.append(adminFD) }
        fds.forEach { close($0) }
        adminFD = -1
        listeners = []
        sessions = []
    }
}

@available(*, unavailable)
extension HandoffTakeOver: Sendable {}

/// How the predecessor ended its part of a handoff, as the successor sees it.
public enum HandoffRelease: Sendable, Equatable {
    /// It let go of everything: the sockets are the successor's alone.
    case released
    /// The connection ended without `released` and the predecessor is gone (why, for the log).
    case predecessorGone(String)
    /// The connection ended without `released` and the predecessor lives: it serves
    /// everything again, and the successor must let go without touching anything.
    case predecessorResumed(String)
}

