import NIOCore
import SpliceCore

/// The outcome of a data-plane operation still under way (a splice dialing its mediator, a
/// removal draining one), for callers that must not wait on an event loop.
///
/// The admin server answers through `whenComplete`, so no server thread sits out a drain
/// that may last `drain_timeout_ms`; start-up, shutdown and tests block with `wait()`.
/// Either way a failure arrives as the `APIError` to report.
public struct GatewayFuture<Value: Sendable>: Sendable {
    private let future: EventLoopFuture<Value>

    /// Wraps a data-plane future.
    init(_ future: EventLoopFuture<Value>) {
        self.future = future
    }

    /// Calls `body` once with the outcome, on the event loop of the operation (NIO runs it
    /// there even when the outcome is known already), not on the caller's thread.
    ///
    /// `body` must only hand the outcome on (complete a pending response, resume a
    /// continuation, count it): anything slower stalls every session on that loop. (It used
    /// to hop to a dispatch queue: one more thread wake-up for every splice, removal or kill.)
    public func whenComplete(_ body: @escaping @Sendable (Result<Value, APIError>) -> Void) {
        future.whenComplete { result in
            body(result.mapError(Self.apiError))
        }
    }

    /// The outcome, awaited without holding a thread (for tasks, such as the cluster's).
    public var value: Value {
        get async throws(APIError) {
            let result = await withCheckedContinuation { continuation in
                whenComplete { continuation.resume(returning: $0) }
            }
            return try result.get()
        }
    }

    /// Blocks until the outcome is known. Never call this on an event loop or an admin
    /// server thread; it is for start-up, shutdown and tests.
    public func wait() throws(APIError) -> Value {
        do {
            return try future.wait()
        } catch {
            throw Self.apiError(error)
        }
    }

    /// The error to report for a failed operation: the data plane's own `APIError`, or a
    /// 502 naming what failed underneath (a dial, a socket).
    private static func apiError(_ error: any Error) -> APIError {
        error as? APIError ?? .badGateway("\(error)")
    }
}
