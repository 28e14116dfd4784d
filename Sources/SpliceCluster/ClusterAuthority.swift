import SpliceControlPlane
import SpliceCore
import SpliceDataPlane

/// Changes to listeners and mediators in a cluster: committed to the database (which tells
/// every node) and applied here. When the database cannot be reached, nothing changes and
/// the answer is 503 `/problems/cluster-store-unavailable`, within `Database.operationLimit`.
struct ClusterAuthority: ConfigAuthority {
    let gateway: Gateway
    let store: ConfigStore
    let sync: ConfigSync
    let membership: Membership

    private var nodeName: String { membership.localNode.name }

    /// Takes an id from the database, binds here under it, then commits; undone here when
    /// the commit fails.
    func addListener(_ spec: ListenerSpec) async throws(APIError) -> ListenerSnapshot {
        let id: ListenerID
        do {
            id = try await store.nextListenerID()
        } catch {
            throw Self.unavailable(error, "listener not created")
        }
        sync.begin(listener: id)
        defer { sync.end(listener: id) }
        let listener = try await gateway.addingListener(sync.local(spec), id: id).value
        let bind = ListenerBind(node: nodeName, state: .bound, listen: "\(listener.spec.listen)")
        do {
            try await store.insertListener(id, spec: spec, bind: bind, origin: nodeName)
        } catch {
            try? await gateway.removingListener(id, closeSessions: true).value
            throw Self.unavailable(error, "listener not created")
        }
        sync.recorded(bind, listener: id)
        return listener
    }

    /// Deletes in the database (every node stops it), then stops it here.
    func removeListener(_ id: ListenerID, closeSessions: Bool) async throws(APIError) {
        sync.begin(listener: id)
        defer { sync.end(listener: id) }
        let deleted: Bool
        do {
            deleted = try await store.deleteListener(id, closeSessions: closeSessions, origin: nodeName)
        } catch {
            throw Self.unavailable(error, "listener \(id) not stopped")
        }
        sync.forget(listener: id)
        do {
            try await gateway.removingListener(id, closeSessions: closeSessions).value
        } catch where error.status == 404 && deleted {
            // Not bound on this node (its bind failed here): stopped on the others.
        }
    }

    /// Registers here (409 if taken here), then commits (409 if taken in the cluster).
    func registerMediator(_ spec: MediatorSpec) async throws(APIError) -> MediatorSnapshot {
        sync.begin(mediator: spec.name)
        defer { sync.end(mediator: spec.name) }
        try gateway.registerMediator(spec)
        do {
            try await store.insertMediator(spec, origin: nodeName)
        } catch {
            try? gateway.unregisterMediator(spec.name)
            throw Self.unavailable(error, "mediator not registered")
        }
        return try gateway.registeredMediator(spec.name)
    }

    /// Unregisters here (409 while a session here uses it), then commits; registered again
    /// here when the commit fails.
    func unregisterMediator(_ name: MediatorName) async throws(APIError) {
        sync.begin(mediator: name)
        defer { sync.end(mediator: name) }
        let held = try? gateway.registeredMediator(name)
        if held != nil { try gateway.unregisterMediator(name) }
        let deleted: Bool
        do {
            deleted = try await store.deleteMediator(name, origin: nodeName)
        } catch {
            if let held { try? gateway.registerMediator(held.spec) }
            throw Self.unavailable(error, "mediator '\(name)' not unregistered")
        }
        guard held != nil || deleted else { throw .notFound("no mediator '\(name)'") }
    }

    func listenersNotHeld(besides held: Set<ListenerID>) -> [ListenerSnapshot] {
        sync.notHeld(besides: held)
    }

    func binds(of listener: ListenerID) -> [ListenerBind]? {
        sync.binds(of: listener)
    }

    /// The problem for a failed database step: the API's own (a 409 for a name taken in the
    /// cluster), else 503.
    private static func unavailable(_ error: any Error, _ what: String) -> APIError {
        if let error = error as? APIError { return error }
        return .clusterStoreUnavailable(
            "\(what): the cluster database cannot be reached (\(Database.reason(error))); nothing was changed")
    }
}
