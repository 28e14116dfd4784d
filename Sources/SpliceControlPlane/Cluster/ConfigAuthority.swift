import SpliceCore
import SpliceDataPlane

/// Who decides a change to the runtime configuration (listeners, mediators) and makes it
/// last: the gateway and its state file alone, or the cluster's database.
///
/// The API parses and validates a request, then hands it here; the answer is the outcome.
/// Input that is wrong never reaches an authority, so it changes nothing anywhere.
public protocol ConfigAuthority: Sendable {
    /// Creates a listener; answers with it as bound on this node.
    func addListener(_ spec: ListenerSpec) async throws(APIError) -> ListenerSnapshot
    /// Stops a listener (with `closeSessions`, its sessions end too).
    func removeListener(_ id: ListenerID, closeSessions: Bool) async throws(APIError)
    /// Registers a mediator; answers with it as registered on this node.
    func registerMediator(_ spec: MediatorSpec) async throws(APIError) -> MediatorSnapshot
    /// Unregisters a mediator; 409 while a session here uses it.
    func unregisterMediator(_ name: MediatorName) async throws(APIError)
    /// The listeners of the shared configuration that this node does not hold (its bind
    /// failed here), as snapshots with no sessions, to be listed with the held ones (`held`);
    /// none when only this gateway holds the configuration. Never blocks.
    func listenersNotHeld(besides held: Set<ListenerID>) -> [ListenerSnapshot]
    /// Each node's bind state of a listener, when the configuration is shared; nil when
    /// only this gateway holds it. Never blocks.
    func binds(of listener: ListenerID) -> [ListenerBind]?
}
