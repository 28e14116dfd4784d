import Foundation
import SpliceCore
import Synchronization

/// Keeps listener and mediator changes (the API's, the cluster's reconciliation) and a
/// handoff apart: a change runs whole, applied and saved (state file, cluster database),
/// before the freeze, or it is refused; none runs while a handoff is under way, and none
/// after it succeeded. So what the successor receives is what the predecessor last saved,
/// and from the release on only the successor writes.
final class ConfigChangeGate: Sendable {
    private struct State {
        var closed = false
        var running = 0
    }

    private let state = Mutex(State())

    /// Lets a change in unless the gate is closed; a change let in must `leave`.
    func enter() -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.running += 1
            return true
        }
    }

    func leave() {
        state.withLock { $0.running -= 1 }
    }

    /// Closes the gate to new changes and waits, at most until `deadline`, for those under
    /// way to end; false if some are still running (the gate stays closed: `open` it).
    /// Blocking: for the handoff's own thread.
    func close(waitingUntil deadline: ContinuousClock.Instant) -> Bool {
        state.withLock { $0.closed = true }
        while state.withLock({ $0.running }) > 0 {
            guard ContinuousClock.now < deadline else { return false }
            usleep(5_000)
        }
        return true
    }

    func open() {
        state.withLock { $0.closed = false }
    }
}

extension Gateway {
    /// Runs a listener or mediator change, `body`, unless a handoff is under way (409):
    /// a handoff that begins meanwhile waits for it to end, saved, before it freezes.
    public func changingConfiguration<T: Sendable>(_ body: () async throws(APIError) -> T) async throws(APIError) -> T {
        guard configChanges.enter() else {
            throw .conflict("a handoff to a new gateway process is under way; retry once it is done")
        }
        defer { configChanges.leave() }
        return try await body()
    }

    /// Runs `body` unless a handoff is under way or has handed everything off (then nil):
    /// for the cluster's reconciliation, which tries again later.
    public func unlessHandingOff<T: Sendable>(_ body: () async -> T) async -> T? {
        guard configChanges.enter() else { return nil }
        defer { configChanges.leave() }
        return await body()
    }
}
