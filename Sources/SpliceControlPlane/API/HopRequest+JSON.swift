import SpliceCore

extension HopRequest {
    static let fields: Set<String> = ["mediator", "address", "direction", "position", "on_failure", "drain_timeout_ms"]

    /// Reads a splice request (`POST …/mediators` body, or a listener's `mediators` entry).
    public init(json: JSON) throws(APIError) {
        let reader = try JSONObjectReader(json, allowed: Self.fields)
        let target: Target
        switch (try reader.optionalString("mediator"), try reader.optionalString("address")) {
        case (let name?, nil):
            target = .registered(MediatorName(name))
        case (nil, let address?):
            let parsed = try HostPort(parsing: address, field: "address")
            guard parsed.port != 0 else { throw .invalid("field 'address' needs a port other than 0") }
            target = .address(parsed)
        default:
            throw .invalid("give exactly one of 'mediator' (a registered name) or 'address' (host:port)")
        }
        guard let directionName = try reader.optionalEnum("direction", DirectionSelection.allCases.map(\.rawValue)),
              let directions = DirectionSelection(rawValue: directionName)
        else { throw .invalid("field 'direction' is required: client_to_server, server_to_client or both") }
        let position = try reader.optionalInt("position", min: 0, max: 1_000).map { Int($0) }
        let onFailure = try reader.optionalEnum("on_failure", FailurePolicy.allCases.map(\.rawValue))
            .flatMap(FailurePolicy.init(rawValue:)) ?? .closeSession
        let drain = try reader.optionalInt("drain_timeout_ms", min: 1, max: 600_000).map { Int($0) }
            ?? Self.defaultDrainTimeoutMs
        self.init(target: target, directions: directions, position: position, onFailure: onFailure,
                  drainTimeoutMs: drain)
    }
}

extension HopRequest {
    /// The request as the API shows it back (a listener's templates, a handoff's hops).
    public var json: JSON {
        var object = JSONObject()
        switch target {
        case .registered(let name): object["mediator"] = .string(name.text)
        case .address(let address): object["address"] = .string("\(address)")
        }
        object["direction"] = .string(directions.rawValue)
        if let position { object["position"] = .int(Int64(position)) }
        object["on_failure"] = .string(onFailure.rawValue)
        object["drain_timeout_ms"] = .int(Int64(drainTimeoutMs))
        return .object(object)
    }
}

extension Dictionary where Key == Direction {
    /// An object keyed by direction name, client-to-server first.
    public func json(_ value: (Value) -> JSON) -> JSON {
        var object = JSONObject()
        for direction in Direction.allCases {
            if let entry = self[direction] { object[direction.rawValue] = value(entry) }
        }
        return .object(object)
    }
}

extension HopSnapshot {
    /// The hop object of the API.
    var json: JSON {
        var object = JSONObject()
        object["id"] = .string("\(id)")
        if let mediator { object["mediator"] = .string(mediator.text) }
        object["address"] = .string(target)
        object["direction"] = .string(directions.rawValue)
        object["position"] = .int(Int64(position))
        object["state"] = .string(state.rawValue)
        object["on_failure"] = .string(onFailure.rawValue)
        object["drain_timeout_ms"] = .int(Int64(drainTimeoutMs))
        object["spliced_at"] = legs.json { .int(Int64(clamping: $0.splicedAt)) }
        object["bytes"] = legs.json {
            ["in": .int(Int64(clamping: $0.bytesIn)), "out": .int(Int64(clamping: $0.bytesOut))]
        }
        return .object(object)
    }
}

extension RemovalReport {
    /// The removal answer of the API.
    func json(hop: HopID) -> JSON {
        [
            "id": .string("\(hop)"),
            "removed_at": removedAt.json { .int(Int64(clamping: $0)) },
            "drained": drained.json { .int(Int64(clamping: $0)) },
        ]
    }
}
