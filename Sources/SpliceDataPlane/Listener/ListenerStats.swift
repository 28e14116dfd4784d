import Synchronization

/// Counters of one listener, updated by its sessions on any loop.
final class ListenerStats: Sendable {
    private let active = Atomic<Int>(0)
    private let total = Atomic<UInt64>(0)
    private let upstreamFailures = Atomic<UInt64>(0)

    init() {}

    /// A client was accepted.
    func sessionOpened() {
        active.wrappingAdd(1, ordering: .relaxed)
        total.wrappingAdd(1, ordering: .relaxed)
    }

    /// A session ended (for whatever reason).
    func sessionClosed() {
        active.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Dialing the upstream failed.
    func upstreamFailed() {
        upstreamFailures.wrappingAdd(1, ordering: .relaxed)
    }

    /// Live sessions.
    var activeSessions: Int { active.load(ordering: .relaxed) }
    /// Sessions accepted in all.
    var totalSessions: UInt64 { total.load(ordering: .relaxed) }
    /// Failed upstream dials.
    var failedDials: UInt64 { upstreamFailures.load(ordering: .relaxed) }
}
