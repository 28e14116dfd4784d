import NIOCore
import SpliceCore

extension Gateway {
    /// Starts copying one or both directions of a live session to a recipient; answers
    /// with the offsets the copies start at.
    public func addSplit(session id: Identifier, _ request: SplitRequest) throws(APIError) -> SplitSnapshot {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        let splitID = registry.makeSplitID()
        return try wait(record.withSession { $0.addSplit(splitID, request: request) })
    }

    /// Detaches a split.
    public func removeSplit(session id: Identifier, split: Identifier) throws(APIError) {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        try wait(record.withSession { $0.removeSplit(split) })
    }

    /// Promotes a replica split to be the session's server now.
    public func failover(session id: Identifier, split: Identifier) throws(APIError) -> SessionSnapshot {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        try wait(record.withSession { $0.failover(to: split) })
        return record.snapshot
    }
}
