import NIOCore
import SpliceCore

extension Gateway {
    /// Starts copying one or both directions of a live session to a recipient; answers
    /// with the offsets the copies start at. Blocks: for tests (the API uses `addingSplit`).
    public func addSplit(session id: SessionID, _ request: SplitRequest) throws(APIError) -> SplitSnapshot {
        try addingSplit(session: id, request).wait()
    }

    /// Starts adding a split, as `addSplit`; 404 at once for an unknown session.
    public func addingSplit(session id: SessionID, _ request: SplitRequest) throws(APIError) -> GatewayFuture<SplitSnapshot> {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        let splitID = registry.makeSplitID()
        return GatewayFuture(record.changingSession { $0.addSplit(splitID, request: request) })
    }

    /// Detaches a split. Blocks: for tests (the API uses `removingSplit`).
    public func removeSplit(session id: SessionID, split: SplitID) throws(APIError) {
        try removingSplit(session: id, split: split).wait()
    }

    /// Starts detaching a split, as `removeSplit`; 404 at once for an unknown session.
    public func removingSplit(session id: SessionID, split: SplitID) throws(APIError) -> GatewayFuture<Void> {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        return GatewayFuture(record.changingSession { $0.removeSplit(split) })
    }

    /// Promotes a replica split to be the session's server now. Blocks: for tests (the API
    /// uses `failingOver`).
    public func failover(session id: SessionID, split: SplitID) throws(APIError) -> SessionSnapshot {
        try failingOver(session: id, split: split).wait()
    }

    /// Starts a failover, as `failover`; 404 at once for an unknown session.
    public func failingOver(session id: SessionID, split: SplitID) throws(APIError) -> GatewayFuture<SessionSnapshot> {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        return GatewayFuture(record.changingSession { $0.failover(to: split) }.map { record.snapshot })
    }
}
