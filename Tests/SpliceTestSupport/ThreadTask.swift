import Foundation

/// Runs blocking work (socket loops, blocking gateway calls) on its own thread, not on the
/// Swift concurrency pool, whose few threads would otherwise starve other tests' tasks.
public final class ThreadTask<T: Sendable>: @unchecked Sendable {
    // @unchecked: `result` and `waiter` are only touched under `lock`.
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    private var waiter: CheckedContinuation<T, any Error>?

    /// Starts `body` on a new thread.
    public init(_ body: @escaping @Sendable () throws -> T) {
        Thread.detachNewThread {
            let outcome = Result { try body() }
            self.lock.lock()
            self.result = outcome
            let waiter = self.waiter
            self.waiter = nil
            self.lock.unlock()
            waiter?.resume(with: outcome)
        }
    }

    /// The body's result, once it has finished.
    public var value: T {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                lock.lock()
                if let result {
                    lock.unlock()
                    continuation.resume(with: result)
                } else {
                    waiter = continuation
                    lock.unlock()
                }
            }
        }
    }
}
