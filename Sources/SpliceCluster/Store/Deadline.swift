/// The operation did not finish in time.
struct DeadlineExceeded: Error, CustomStringConvertible {
    var description: String { "no answer from the database in time" }
}

/// Runs `body`, or gives up after `limit`: then `abandon` runs (it must make `body` return
/// soon, e.g. by closing the connection `body` waits on) and `DeadlineExceeded` is thrown.
/// A task group waits for all its children, so cancelling alone would not do: a query on a
/// connection whose peer has vanished ignores cancellation until TCP gives up.
func withDeadline<T: Sendable>(
    _ limit: Duration, abandon: @escaping @Sendable () -> Void,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            abandon()
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlineExceeded() }
        return value
    }
}
