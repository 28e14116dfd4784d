/// Something that happened in the gateway, as the event stream reports it.
public enum GatewayEvent: Sendable {
    case listenerAdded(ListenerSnapshot)
    case listenerRemoved(Identifier)
    case sessionOpened(SessionSnapshot)
    case sessionClosed(SessionSnapshot, reason: CloseReason)
    case hopSpliced(session: Identifier, HopSnapshot)
    case hopRemoved(session: Identifier, hop: Identifier, RemovalReport)
    case hopFailed(session: Identifier, hop: Identifier, reason: String, policy: FailurePolicy)
    case splitAdded(session: Identifier, SplitSnapshot)
    case splitDropped(session: Identifier, SplitSnapshot)
    case splitRemoved(session: Identifier, split: Identifier)
    case failedOver(session: Identifier, split: Identifier, server: String, reason: String)

    /// The event's name on the wire (`session.opened`, …).
    public var name: String {
        switch self {
        case .listenerAdded: "listener.added"
        case .listenerRemoved: "listener.removed"
        case .sessionOpened: "session.opened"
        case .sessionClosed: "session.closed"
        case .hopSpliced: "hop.spliced"
        case .hopRemoved: "hop.removed"
        case .hopFailed: "hop.failed"
        case .splitAdded: "split.added"
        case .splitDropped: "split.dropped"
        case .splitRemoved: "split.removed"
        case .failedOver: "session.failed_over"
        }
    }
}
