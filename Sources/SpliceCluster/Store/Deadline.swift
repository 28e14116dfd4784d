import Synchronization

/// The operation did not finish in time.
struct DeadlineExceeded: Error, CustomStringConvertible {
    var description: String { "no answer from the database in time" }
}

/// Runs `body`, or gives up after `limit`: then `abandon` runs (it should make `body` end
/// soon, e.g. by closing the connection `body` waits on), `body`'s task is cancelled and
/// `DeadlineExceeded` is thrown at once.
///
/// The caller does not wait for `body` to end once the deadline has passed: a task group
/// would, and `body` may never end. A query on a connection whose peer has vanished ignores
/// cancellation until TCP gives up, and postgres-nio (1.33) never answers a query written
/// to a connection that has already closed. Whatever `body` still holds when it ends late
/// is its own to release (see `Database.Hold`).
func withDeadline<T: Sendable>(
    _ limit: Duration, abandon: @escaping @Sendable () -> Void,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    let work = Task {
        do {
            race.finish(.success(try await body()))
        } catch {
            race.finish(.failure(error))
        }
    }
    let timer = Task {
        guard (try? await Task.sleep(for: limit)) != nil else { return }
        if race.finish(.failure(DeadlineExceeded())) {
            abandon()
            work.cancel()
        }
    }
    defer { timer.cancel() }
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { race.wait($0) }
    } onCancel: {
        if race.finish(.failure(CancellationError())) { work.cancel() }
    }
}

/// The first of `body`'s outcome, the deadline and the caller's cancellation: handed to
/// the waiting caller exactly once, whichever comes first and whenever the caller waits.
private final class DeadlineRace<T: Sendable>: Sendable {
    private enum State {
        case running
        case waiting(CheckedContinuation<T, any Error>)
        case finished(Result<T, any Error>)
        case handedOver
    }

    private let state = Mutex(State.running)

    /// Records `outcome` if it is the first; true when it was.
    @discardableResult
    func finish(_ outcome: Result<T, any Error>) -> Bool {
        let waiter = state.withLock { state -> CheckedContinuation<T, any Error>?? in
            switch state {
            case .running:
                state = .finished(outcome)
                return .some(nil)
            case .waiting(let continuation):
                state = .handedOver
                return .some(continuation)
            case .finished, .handedOver:
                return .none
            }
        }
        guard let waiter else { return false }
        waiter?.resume(with: outcome)
        return true
    }

    /// Hands the outcome to `continuation` now, or as soon as there is one.
    func wait(_ continuation: CheckedContinuation<T, any Error>) {
        let outcome = state.withLock { state -> Result<T, any Error>? in
            switch state {
            case .running:
                state = .waiting(continuation)
                return nil
            case .finished(let outcome):
                state = .handedOver
                return outcome
            case .waiting, .handedOver:
                preconditionFailure("one caller waits on a deadline race")
            }
        }
        if let outcome { continuation.resume(with: outcome) }
    }
}
