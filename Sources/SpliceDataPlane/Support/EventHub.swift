import SpliceCore
import Synchronization

/// Fans gateway events out to subscribers (the admin event stream).
///
/// Publishers are event loops: a subscriber must only queue the event (never block), and
/// with no subscriber an event costs one lock and nothing else — its payload is built only
/// when somebody listens.
public final class EventHub: Sendable {
    /// A subscription; cancel it when the listener goes away.
    public struct Token: Sendable, Hashable {
        let value: UInt64
    }

    private struct State {
        var next: UInt64 = 1
        var subscribers: [UInt64: @Sendable (UInt64, GatewayEvent) -> Void] = [:]
        var sequence: UInt64 = 0
        /// Events every subscriber gets first, whenever it subscribes (`gateway.handoff`:
        /// it happens before anyone can be listening to this process).
        var retained: [(UInt64, GatewayEvent)] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Calls `deliver` with a sequence number and each event from now on.
    public func subscribe(_ deliver: @escaping @Sendable (UInt64, GatewayEvent) -> Void) -> Token {
        state.withLock { state in
            defer { state.next += 1 }
            for (sequence, event) in state.retained { deliver(sequence, event) }
            state.subscribers[state.next] = deliver
            return Token(value: state.next)
        }
    }

    /// How many subscribers there are now.
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    /// Stops delivering to a subscriber.
    public func cancel(_ token: Token) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: token.value) }
    }

    /// Publishes an event and keeps it: every later subscriber gets it first.
    public func publishRetained(_ event: GatewayEvent) {
        state.withLock { state in
            state.sequence += 1
            state.retained.append((state.sequence, event))
            for deliver in state.subscribers.values {
                deliver(state.sequence, event)
            }
        }
    }

    /// Publishes an event built only if there is a subscriber. Delivery happens under the
    /// hub's lock so that every subscriber sees one global order.
    public func publish(_ event: @autoclosure () -> GatewayEvent) {
        state.withLock { state in
            guard !state.subscribers.isEmpty else { return }
            state.sequence += 1
            let built = event()
            for deliver in state.subscribers.values {
                deliver(state.sequence, built)
            }
        }
    }
}
