import SpliceCore

extension CaptureSnapshot {
    /// A live capture as the session object lists it.
    var json: JSON {
        var object = JSONObject()
        object["id"] = .string("\(id)")
        object["listener"] = listener.map { .string("\($0)") } ?? .null
        object["points"] = .string(request.points.rawValue)
        object["direction"] = .string(request.directions.rawValue)
        object["buffer_bytes"] = .int(Int64(request.bufferBytes))
        object["started_at"] = .string(startedAt.rfc3339)
        object["packets"] = .int(Int64(clamping: packets))
        object["dropped"] = .int(Int64(clamping: dropped))
        return .object(object)
    }
}
