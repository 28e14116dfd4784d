import SpliceCore
import SpliceDataPlane

/// An authority whose changes keep clear of a handoff (`Gateway.changingConfiguration`):
/// each runs whole, saved where it is kept, before a handoff freezes the gateway, or is
/// refused with 409 once one is under way. So a change is never half on its way to a
/// successor, and a predecessor that handed off never writes the state file again.
struct HandoffGatedAuthority: ConfigAuthority {
    let inner: any ConfigAuthority
    let gateway: Gateway

    func addListener(_ spec: ListenerSpec) async throws(APIError) -> ListenerSnapshot {
        try await gateway.changingConfiguration { () async throws(APIError) in try await inner.addListener(spec) }
    }

    func removeListener(_ id: ListenerID, closeSessions: Bool) async throws(APIError) {
        try await gateway.changingConfiguration { () async throws(APIError) in
            try await inner.removeListener(id, closeSessions: closeSessions)
        }
    }

    func registerMediator(_ spec: MediatorSpec) async throws(APIError) -> MediatorSnapshot {
        try await gateway.changingConfiguration { () async throws(APIError) in try await inner.registerMediator(spec) }
    }

    func unregisterMediator(_ name: MediatorName) async throws(APIError) {
        try await gateway.changingConfiguration { () async throws(APIError) in try await inner.unregisterMediator(name) }
    }

    func listenersNotHeld(besides held: Set<ListenerID>) -> [ListenerSnapshot] {
        inner.listenersNotHeld(besides: held)
    }

    func binds(of listener: ListenerID) -> [ListenerBind]? {
        inner.binds(of: listener)
    }
}
