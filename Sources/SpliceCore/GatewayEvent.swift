/// Something that happened in the gateway, as the event stream reports it.
public enum GatewayEvent: Sendable {
    case listenerAdded(ListenerSnapshot)
    case listenerRemoved(ListenerID)
    case sessionOpened(SessionSnapshot)
    case sessionClosed(SessionSnapshot, reason: CloseReason)
    case hopSpliced(session: SessionID, HopSnapshot)
    case hopRemoved(session: SessionID, hop: HopID, RemovalReport)
    case hopFailed(session: SessionID, hop: HopID, reason: String, policy: FailurePolicy)
    case splitAdded(session: SessionID, SplitSnapshot)
    case splitDropped(session: SessionID, SplitSnapshot)
    case splitRemoved(session: SessionID, split: SplitID)
    case failedOver(session: SessionID, split: SplitID, server: String, reason: String)
    /// This process took over from a predecessor (issue 15): how many sessions and
    /// listeners it took, and the predecessor's process id.
    case handoff(sessions: Int, listeners: Int, from: Int32)

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
        case .handoff: "gateway.handoff"
        }
    }
}
