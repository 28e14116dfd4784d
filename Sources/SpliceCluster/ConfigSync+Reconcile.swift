import Foundation
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane

extension ConfigSync {
    /// Makes the gateway hold what the database holds. The local state is read before the
    /// database's, and what this node's API changes at any moment of the round is left for
    /// the next one (`InFlight`), so a listener or mediator the API creates meanwhile is
    /// never taken for a deleted one.
    func reconcile() async {
        inFlight.withLock { $0.beginRound() }
        let localListeners = Set(gateway.listeners().map(\.id))
        let localMediators = Dictionary(gateway.registeredMediators().map { ($0.spec.name, $0) },
                                        uniquingKeysWith: { first, _ in first })
        let wanted: ConfigStore.Snapshot
        do {
            wanted = try await store.load()
        } catch {
            logger.debug("reconciliation postponed", metadata: ["reason": "\(Database.reason(error))"])
            dirty.store(true, ordering: .relaxed)
            return
        }
        reconciledVersion.withLock { $0 = wanted.version }
        bindRetries.withLock { $0.keep(only: Set(wanted.listeners.keys)) }
        let busy = inFlight.withLock { $0.touched }
        known.withLock { known in
            known = wanted.listeners.reduce(into: [:]) { known, entry in
                known[entry.key] = (local(entry.value), wanted.created[entry.key] ?? Date())
            }
        }
        // What this node's API is changing is left alone now, and looked at again at the
        // next round: the change may stand or be undone after the database was read.
        var complete = busy.listeners.isEmpty && busy.mediators.isEmpty
        for (name, spec) in wanted.mediators.sorted(by: { $0.key < $1.key }) where !busy.mediators.contains(name) {
            do throws(APIError) {
                if let held = localMediators[name] {
                    guard held.spec != spec else { continue }
                    // Re-registered with another spec: hops here keep the one they have.
                    gateway.retireMediator(name)
                }
                try gateway.registerMediator(spec)
            } catch {
                logger.notice("cluster mediator not applied yet", metadata: ["mediator": "\(name)", "reason": "\(error.detail)"])
                complete = false
            }
        }
        for (id, spec) in wanted.listeners.sorted(by: { $0.key < $1.key })
        where !localListeners.contains(id) && !busy.listeners.contains(id) {
            await bind(id, spec)
        }
        // Bind states a failed write left unrecorded (or an earlier run of this node left).
        for listener in gateway.listeners() where wanted.listeners[listener.id] != nil && !busy.listeners.contains(listener.id) {
            await record(ListenerBind(node: nodeName, state: .bound, listen: "\(listener.spec.listen)"), listener: listener.id)
        }
        for id in localListeners.sorted() where wanted.listeners[id] == nil && !busy.listeners.contains(id) {
            written.withLock { $0[id] = nil }
            do {
                try await gateway.removingListener(id, closeSessions: false).value
            } catch where error.status == 404 {
            } catch {
                complete = false
            }
        }
        // Deleted in the cluster: gone here too, but for hops that hold it (a splice here
        // may have raced the deletion); they keep it until they end.
        for name in localMediators.keys.sorted() where wanted.mediators[name] == nil && !busy.mediators.contains(name) {
            gateway.retireMediator(name)
        }
        if !complete { dirty.store(true, ordering: .relaxed) }
    }

    /// Binds a listener of the database here and records the outcome either way.
    private func bind(_ id: ListenerID, _ spec: ListenerSpec) async {
        // This node's API may have begun changing it since the reconciliation began: looked
        // at again at the next round.
        guard !inFlight.withLock({ $0.touched.listeners.contains(id) }) else {
            dirty.store(true, ordering: .relaxed)
            return
        }
        let spec = local(spec)
        let bind: ListenerBind
        do {
            let listener = try await gateway.addingListener(spec, id: id).value
            bind = ListenerBind(node: nodeName, state: .bound, listen: "\(listener.spec.listen)")
            bindRetries.withLock { $0.forget(id) }
            logger.info("cluster listener bound", metadata: ["listener": "\(id)", "listen": "\(listener.spec.listen)"])
        } catch {
            bind = ListenerBind(node: nodeName, state: .failed, listen: "\(spec.listen)", error: error.detail)
            bindRetries.withLock { $0.failed(id) }
            logger.warning("cluster listener cannot bind here", metadata: [
                "listener": "\(id)", "listen": "\(spec.listen)", "reason": "\(error.detail)",
            ])
        }
        await record(bind, listener: id)
    }

    /// Writes this node's bind state of a listener unless it is written already; a failed
    /// write is retried at the next round.
    private func record(_ bind: ListenerBind, listener id: ListenerID) async {
        guard written.withLock({ $0[id] }) != bind else { return }
        do {
            if try await store.writeBind(bind, listener: id) {
                recorded(bind, listener: id)
            } else if !inFlight.withLock({ $0.touched.listeners.contains(id) }) {
                // Deleted since this reconciliation read it (a DELETE that answered 204
                // meanwhile): not held here either.
                forget(listener: id)
                try? await gateway.removingListener(id, closeSessions: false).value
            } else {
                dirty.store(true, ordering: .relaxed)
            }
        } catch {
            logger.debug("bind state not recorded yet", metadata: ["listener": "\(id)", "reason": "\(Database.reason(error))"])
            dirty.store(true, ordering: .relaxed)
        }
    }
}
