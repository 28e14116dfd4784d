import SpliceControlPlane
import SpliceCore
import SpliceDataPlane

/// Changes to listeners and mediators in a cluster: committed to the database (which tells
/// every node) and applied here. When the database cannot be reached the answer is 503
/// `/problems/cluster-store-unavailable`, within `Database.operationLimit`: "nothing was
/// changed" when the change was never committed; when the link failed after COMMIT was sent
/// the change may be in the database, and the answer says so (this node then reconciles as
/// soon as the database answers, like every other node).
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
            throw unavailable(error, "listener not created", "creating a listener")
        }
        sync.begin(listener: id)
        defer { sync.end(listener: id) }
        let listener = try await gateway.addingListener(sync.local(spec), id: id).value
        let bind = ListenerBind(node: nodeName, state: .bound, listen: "\(listener.spec.listen)")
        do {
            try await store.insertListener(id, spec: spec, bind: bind, origin: sync.origin)
        } catch {
            // If the commit went through, the reconciliation binds it again; sessions that
            // arrived meanwhile are not cut for a change that may stand.
            try? await gateway.removingListener(id, closeSessions: !Self.outcomeUnknown(error)).value
            throw unavailable(error, "listener \(id) not created", "creating listener \(id)")
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
            deleted = try await store.deleteListener(id, closeSessions: closeSessions, origin: sync.origin)
        } catch {
            throw unavailable(error, "listener \(id) not stopped", "deleting listener \(id)")
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
            try await store.insertMediator(spec, origin: sync.origin)
        } catch {
            gateway.retireMediator(spec.name)
            throw unavailable(error, "mediator not registered", "registering mediator '\(spec.name)'")
        }
        // As registered: another node may delete it as soon as it is committed, and this
        // answer is about the registration, not what is left of it by then.
        return MediatorSnapshot(spec: spec, inUse: 0)
    }

    /// 409 while a session here uses it; else deleted in the database, then unregistered
    /// here. Nothing is unregistered before the database has said yes, so a failed delete
    /// leaves the mediator usable where it was.
    func unregisterMediator(_ name: MediatorName) async throws(APIError) {
        sync.begin(mediator: name)
        defer { sync.end(mediator: name) }
        let held = try? gateway.registeredMediator(name)
        if let held, held.inUse > 0 {
            throw .conflict("mediator '\(name)' is spliced into \(held.inUse) hop(s) on node '\(nodeName)'; "
                + "remove them first")
        }
        if let listener = sync.listeners(splicing: name).first {
            throw .conflict("mediator '\(name)' is spliced by the template of listener \(listener); "
                + "delete that listener first")
        }
        let deleted: Bool
        do {
            deleted = try await store.deleteMediator(name, origin: sync.origin)
        } catch {
            throw unavailable(error, "mediator '\(name)' not unregistered", "unregistering mediator '\(name)'")
        }
        guard held != nil || deleted else { throw .notFound("no mediator '\(name)'") }
        // Spliced in since the check, it stays with those hops only.
        gateway.retireMediator(name)
    }

    func listenersNotHeld(besides held: Set<ListenerID>) -> [ListenerSnapshot] {
        sync.notHeld(besides: held)
    }

    func binds(of listener: ListenerID) -> [ListenerBind]? {
        sync.binds(of: listener)
    }

    /// The problem for a failed database step: the API's own (a 409 for a name taken in the
    /// cluster), else 503, saying whether the change may have been applied. When it may,
    /// this node reconciles at its next round that reaches the database.
    private func unavailable(_ error: any Error, _ notDone: String, _ doing: String) -> APIError {
        if let error = error as? APIError { return error }
        guard Self.outcomeUnknown(error) else {
            return .clusterStoreUnavailable(
                "\(notDone): the cluster database cannot be reached (\(Database.reason(error))); nothing was changed")
        }
        sync.dirty.store(true, ordering: .relaxed)
        return .clusterStoreUnavailable(
            "\(doing): the cluster database stopped answering after the change was sent to it "
                + "(\(Database.reason(error))); the change may or may not have been applied, and every node "
                + "converges on what the database holds: read it back once the database answers")
    }

    private static func outcomeUnknown(_ error: any Error) -> Bool {
        (error as? ClusterError)?.outcomeUnknown == true
    }
}
