import Dispatch
import Synchronization

/// Runs async `body` to completion from synchronous code (a command's `run()`), blocking the
/// calling thread. The executable's root command is synchronous (the gateway blocks its main
/// thread), so `ctl` bridges here rather than making the whole executable async.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        result.withLock { $0 = outcome }
        done.signal()
    }
    done.wait()
    // The task has stored its outcome before signalling.
    guard let outcome = result.withLock({ $0 }) else { fatalError("blocking: task ended without a result") }
    return try outcome.get()
}
