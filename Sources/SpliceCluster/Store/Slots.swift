import Synchronization

/// At most `count` holders at once; the others wait their turn, first come first served,
/// until a deadline. What bounds the database connections one node opens: however many
/// admin requests arrive together, the database sees at most `count` of them.
final class Slots: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var free: Int
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
        /// Waiters given an id and not waiting yet.
        var arriving: Set<UInt64> = []
        /// Of those, the ones whose deadline passed or whose task was cancelled meanwhile.
        var gaveUp: Set<UInt64> = []
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        precondition(count > 0)
        state = Mutex(State(free: count))
    }

    /// Slots free now (for tests).
    var free: Int { state.withLock { $0.free } }
    /// Tasks waiting for one now (for tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Takes a slot, waiting until `deadline` at most; false if none came by then or the
    /// task was cancelled. A true answer must be matched by one `release()`.
    func acquire(until deadline: ContinuousClock.Instant) async -> Bool {
        let id: UInt64? = state.withLock { state in
            if state.free > 0 {
                state.free -= 1
                return nil
            }
            defer { state.nextID += 1 }
            state.arriving.insert(state.nextID)
            return state.nextID
        }
        guard let id else { return true }
        let timer = Task {
            guard (try? await Task.sleep(until: deadline)) != nil else { return }
            self.giveUp(id)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let answer = state.withLock { state -> Bool? in
                    state.arriving.remove(id)
                    if state.gaveUp.remove(id) != nil { return false }
                    // Freed between the first look and now.
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            giveUp(id)
        }
    }

    /// Gives a slot back: to the first waiter, if any.
    func release() {
        let next = state.withLock { state -> Waiter? in
            guard !state.waiters.isEmpty else {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.continuation.resume(returning: true)
    }

    /// A waiter's deadline passed, or its task was cancelled: it stops waiting, unless it
    /// was served already. One that has not begun to wait finds out when it begins.
    private func giveUp(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            if state.arriving.contains(id) {
                state.gaveUp.insert(id)
                return nil
            }
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(returning: false)
    }
}
