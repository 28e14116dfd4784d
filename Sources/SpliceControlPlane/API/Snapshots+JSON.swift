import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SpliceCore

extension Date {
    /// RFC 3339 in UTC with second precision, as every timestamp in the API is written.
    ///
    /// Formatted by hand from `gmtime_r`: a session listing writes one per session, and
    /// Foundation's formatter costs more than the rest of the session object together.
    var rfc3339: String {
        var seconds = time_t(timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}

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

extension SessionSnapshot {
    /// The session object of the API.
    var json: JSON {
        var object = JSONObject()
        object["id"] = .string("\(id)")
        object["listener"] = .string("\(listener)")
        object["client"] = .string(client)
        object["server"] = .string(server)
        object["state"] = .string(state.rawValue)
        object["opened_at"] = .string(openedAt.rfc3339)
        object["bytes"] = [
            "client_to_server": .int(Int64(clamping: bytes.clientToServer)),
            "server_to_client": .int(Int64(clamping: bytes.serverToClient)),
        ]
        object["mediators"] = .array(hops.map(\.json))
        object["splits"] = .array(splits.map(\.json))
        return .object(object)
    }
}
