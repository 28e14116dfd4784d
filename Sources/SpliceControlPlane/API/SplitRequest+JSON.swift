import SpliceCore

extension SplitRequest {
    static let fields: Set<String> = ["address", "direction", "on_slow", "buffer_bytes", "failover"]

    /// Reads a split request (`POST …/splits` body, or a listener's `splits` entry).
    public init(json: JSON) throws(APIError) {
        let reader = try JSONObjectReader(json, allowed: Self.fields)
        let address = try HostPort(parsing: reader.requiredString("address"), field: "address")
        guard address.port != 0 else { throw .invalid("field 'address' needs a port other than 0") }
        guard let directionName = try reader.optionalEnum("direction", DirectionSelection.allCases.map(\.rawValue)),
              let directions = DirectionSelection(rawValue: directionName)
        else { throw .invalid("field 'direction' is required: client_to_server, server_to_client or both") }
        let onSlow = try reader.optionalEnum("on_slow", SlowPolicy.allCases.map(\.rawValue))
            .flatMap(SlowPolicy.init(rawValue:)) ?? .drop
        let buffer = try reader.optionalInt("buffer_bytes", min: 4096, max: 1 << 30).map { Int($0) }
            ?? Self.defaultBufferBytes
        let failover = try reader.optionalBool("failover") ?? false
        self.init(address: address, directions: directions, onSlow: onSlow, bufferBytes: buffer, failover: failover)
        if failover && !canBeReplica {
            throw .invalid("failover needs a replica: direction client_to_server with on_slow block")
        }
    }

    /// The request as the API shows it back (a listener's templates, a handoff's splits).
    public var json: JSON {
        [
            "address": .string("\(address)"),
            "direction": .string(directions.rawValue),
            "on_slow": .string(onSlow.rawValue),
            "buffer_bytes": .int(Int64(bufferBytes)),
            "failover": .bool(failover),
        ]
    }
}

extension SplitSnapshot {
    /// The split object of the API.
    var json: JSON {
        var object = JSONObject()
        object["id"] = .string("\(id)")
        object["address"] = .string("\(request.address)")
        object["direction"] = .string(request.directions.rawValue)
        object["on_slow"] = .string(request.onSlow.rawValue)
        object["buffer_bytes"] = .int(Int64(request.bufferBytes))
        object["failover"] = .bool(request.failover)
        object["state"] = .string(state.rawValue)
        if let reason { object["reason"] = .string(reason) }
        object["from_offset"] = legs.json { .int(Int64(clamping: $0.fromOffset)) }
        object["bytes"] = legs.json {
            [
                "sent": .int(Int64(clamping: $0.bytesSent)),
                "dropped": .int(Int64(clamping: $0.bytesDropped)),
                "discarded": .int(Int64(clamping: $0.bytesDiscarded)),
            ]
        }
        return .object(object)
    }
}
