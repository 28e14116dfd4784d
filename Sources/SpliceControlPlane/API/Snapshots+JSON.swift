import SpliceCore

extension ListenerSnapshot {
    /// The listener object of the API.
    var json: JSON {
        var object = JSONObject()
        object["id"] = .string("\(id)")
        if let name = spec.name { object["name"] = .string(name) }
        object["listen"] = .string("\(spec.listen)")
        object["upstream"] = .string("\(spec.upstream)")
        object["connect_timeout_ms"] = .int(Int64(spec.connectTimeoutMs))
        object["mediators"] = .array(spec.mediators.map(\.json))
        object["splits"] = .array(spec.splits.map(\.json))
        object["created_at"] = .string(createdAt.rfc3339)
        object["sessions"] = ["active": .int(Int64(activeSessions)), "total": .int(Int64(totalSessions))]
        if let maxSessions = spec.maxSessions { object["max_sessions"] = .int(Int64(maxSessions)) }
        if let idleTimeoutMs = spec.idleTimeoutMs { object["idle_timeout_ms"] = .int(Int64(idleTimeoutMs)) }
        object["upstream_failures"] = .int(Int64(upstreamFailures))
        object["rejected_sessions"] = .int(Int64(clamping: rejectedSessions))
        return .object(object)
    }
}
