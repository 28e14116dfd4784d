import NIOCore
import SpliceCore

extension Gateway {
    /// Registers a mediator; 409 when the name is taken.
    public func registerMediator(_ spec: MediatorSpec) throws(APIError) {
        try mediators.register(spec)
        logger.info("mediator registered", metadata: ["mediator": "\(spec.name)", "target": "\(spec.target)"])
    }

    /// Unregisters a mediator; 404 when unknown, 409 while spliced anywhere.
    public func unregisterMediator(_ name: MediatorName) throws(APIError) {
        try mediators.unregister(name)
        logger.info("mediator unregistered", metadata: ["mediator": "\(name)"])
    }

    /// Removes a mediator that was deleted elsewhere (the cluster's database), whatever
    /// uses it here: hops that hold it keep it until they end, nothing new can splice it.
    public func retireMediator(_ name: MediatorName) {
        guard mediators.retire(name) else { return }
        logger.info("mediator unregistered", metadata: ["mediator": "\(name)"])
    }

    /// Every registered mediator, by name.
    public func registeredMediators() -> [MediatorSnapshot] {
        mediators.all().map { MediatorSnapshot(spec: $0.spec, inUse: $0.inUse) }
    }

    /// One registered mediator.
    public func registeredMediator(_ name: MediatorName) throws(APIError) -> MediatorSnapshot {
        guard let entry = mediators.lookUp(name) else { throw .notFound("no mediator '\(name)'") }
        return MediatorSnapshot(spec: entry.spec, inUse: entry.inUse)
    }

    /// Splices a mediator into a live session; answers once it has taken effect, with the
    /// offsets where it did. Blocks: for tests (the API uses `splicing`).
    public func splice(session id: SessionID, _ request: HopRequest) throws(APIError) -> HopSnapshot {
        try splicing(session: id, request).wait()
    }

    /// Starts a splice, as `splice`; 404 at once for an unknown session.
    public func splicing(session id: SessionID, _ request: HopRequest) throws(APIError) -> GatewayFuture<HopSnapshot> {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        let hopID = registry.makeHopID()
        let allowAdHoc = allowAdHocMediators
        return GatewayFuture(record.changingSession { $0.splice(hopID, request: request, allowAdHoc: allowAdHoc) })
    }

    /// Drains and removes a hop; answers with the offsets where feeding stopped and the
    /// bytes the drain forwarded, or a 504 when the drain timed out. Blocks up to the drain
    /// timeout: for tests (the API uses `removingHop`).
    public func removeHop(session id: SessionID, hop: HopID) throws(APIError) -> RemovalReport {
        try removingHop(session: id, hop: hop).wait()
    }

    /// Starts a removal, as `removeHop`; 404 at once for an unknown session.
    public func removingHop(session id: SessionID, hop: HopID) throws(APIError) -> GatewayFuture<RemovalReport> {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        return GatewayFuture(record.changingSession { $0.removeHop(hop) })
    }
}
