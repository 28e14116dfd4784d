import SpliceCore
import Synchronization

/// Counters of one listener, updated by its sessions on any loop, and the admission check
/// for its session limits.
final class ListenerStats: Sendable {
    /// The listener these count for.
    let listener: ListenerID
    /// The gateway's metrics, which session events also feed.
    let metrics: GatewayMetrics
    private let counters: GatewayMetrics.ListenerCounters
    private let budget: SessionBudget
    private let maxSessions: Int?
    private let active = Atomic<Int>(0)
    private let total = Atomic<UInt64>(0)
    private let upstreamFailures = Atomic<UInt64>(0)
    private let rejected = Atomic<UInt64>(0)

    init(listener: ListenerID, maxSessions: Int?, budget: SessionBudget, metrics: GatewayMetrics) {
        self.listener = listener
        self.maxSessions = maxSessions
        self.budget = budget
        self.metrics = metrics
        self.counters = metrics.counters(for: listener)
    }

    /// Takes this listener's series out of `/metrics`, for a listener that failed to start.
    func unregisterMetrics() {
        counters.unregister()
    }

    /// Takes a place for a new client under both limits; false (counted) when either is full.
    /// A place taken is given back by `sessionClosed()`.
    func admit() -> Bool {
        let limit = maxSessions ?? .max
        var current = active.load(ordering: .relaxed)
        while true {
            guard current < limit else { return reject(.listener) }
            let (exchanged, original) = active.weakCompareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        guard budget.acquire() else {
            active.wrappingSubtract(1, ordering: .relaxed)
            return reject(.global)
        }
        return true
    }

    private func reject(_ limit: SessionLimitKind) -> Bool {
        rejected.wrappingAdd(1, ordering: .relaxed)
        counters.rejected[limit]?.increment()
        return false
    }

    /// A client was accepted (after `admit()`).
    func sessionOpened() {
        total.wrappingAdd(1, ordering: .relaxed)
        counters.opened.increment()
    }

    /// A session ended (for whatever reason): its place is free again.
    func sessionClosed() {
        active.wrappingSubtract(1, ordering: .relaxed)
        budget.release()
    }

    /// The reason and final byte counts of a session that ended, for the metrics.
    func sessionEnded(_ reason: CloseReason, bytes: ByteCounts) {
        counters.sessionClosed(reason: reason, bytes: bytes)
    }

    /// Goes on from a predecessor's figures (a handoff): sessions accepted, failed dials and
    /// clients turned away so far. The Prometheus counters go on too (a counter that falls
    /// back to 0 reads as a restart to `rate()`), but for the rejections: the predecessor
    /// hands over their total, not how many each limit turned away.
    func continueFrom(total accepted: UInt64, upstreamFailures failures: UInt64, rejected turnedAway: UInt64) {
        total.store(accepted, ordering: .relaxed)
        upstreamFailures.store(failures, ordering: .relaxed)
        rejected.store(turnedAway, ordering: .relaxed)
        counters.opened.increment(by: Int64(clamping: accepted))
        counters.upstreamFailures.increment(by: Int64(clamping: failures))
    }

    /// A live session taken over from a predecessor: it holds a place under the limits
    /// whether or not one is free (it was admitted there), and is not counted as new.
    func sessionAdopted() {
        active.wrappingAdd(1, ordering: .relaxed)
        budget.acquireAlways()
    }

    /// Dialing the upstream failed.
    func upstreamFailed() {
        upstreamFailures.wrappingAdd(1, ordering: .relaxed)
        counters.upstreamFailures.increment()
    }

    /// Live sessions.
    var activeSessions: Int { active.load(ordering: .relaxed) }
    /// Sessions accepted in all.
    var totalSessions: UInt64 { total.load(ordering: .relaxed) }
    /// Failed upstream dials.
    var failedDials: UInt64 { upstreamFailures.load(ordering: .relaxed) }
    /// Clients turned away by a session limit.
    var rejectedSessions: UInt64 { rejected.load(ordering: .relaxed) }
}

/// The gateway-wide session limit (`--max-sessions`), shared by every listener.
final class SessionBudget: Sendable {
    private let limit: Int
    private let used = Atomic<Int>(0)

    /// A budget of `limit` live sessions; nil for no limit.
    init(limit: Int?) {
        self.limit = limit ?? .max
    }

    /// Takes one place; false when none is left.
    func acquire() -> Bool {
        var current = used.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = used.weakCompareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Takes one place even past the limit (a session taken over from a predecessor).
    func acquireAlways() {
        used.wrappingAdd(1, ordering: .relaxed)
    }

    /// Gives one place back.
    func release() {
        used.wrappingSubtract(1, ordering: .relaxed)
    }
}
