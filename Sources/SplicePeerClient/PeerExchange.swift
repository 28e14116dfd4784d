import NIOCore
import Synchronization

/// One exchange with a peer: finishes once, whatever ends it first (the response's end, a
/// failure, the timeout, or the consumer).
public final class PeerExchange: Sendable {
    private struct State {
        var channel: Channel?
        var finished = false
        var onFinish: [@Sendable () -> Void] = []
    }

    let handlers: PeerClient.StreamHandlers
    private let state = Mutex(State())

    init(handlers: PeerClient.StreamHandlers) {
        self.handlers = handlers
    }

    /// Ends the exchange now (the consumer has gone); the end handler is not called.
    public func cancel() {
        let channel = state.withLock { state -> Channel? in
            guard !state.finished else { return nil }
            state.finished = true
            return state.channel
        }
        channel?.close(promise: nil)
        runFinish()
    }

    /// Ends the exchange now with a failure, which its end handler hears (the consumer
    /// gave up on the peer).
    public func fail(_ reason: String) {
        finish(PeerClient.Failure(description: reason))
    }

    /// Whether the exchange is over.
    public var isFinished: Bool { state.withLock { $0.finished } }

    /// Records the connection; false (and closes it) when the exchange already ended.
    func attach(_ channel: Channel) -> Bool {
        let attached = state.withLock { state -> Bool in
            guard !state.finished else { return false }
            state.channel = channel
            return true
        }
        if !attached { channel.close(promise: nil) }
        return attached
    }

    /// Ends the exchange with `failure` (nil: the body ended normally); only the first call counts.
    func finish(_ failure: PeerClient.Failure?) {
        let channel = state.withLock { state -> Channel?? in
            guard !state.finished else { return .none }
            state.finished = true
            return .some(state.channel)
        }
        guard case .some(let open) = channel else { return }
        open?.close(promise: nil)
        handlers.end(failure)
        runFinish()
    }

    /// Runs `body` once the exchange is over, however it ended (at once if it is).
    public func onFinish(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.finished { return true }
            state.onFinish.append(body)
            return false
        }
        if now { body() }
    }

    private func runFinish() {
        for body in state.withLock({ state in defer { state.onFinish = [] }; return state.onFinish }) { body() }
    }
}
