import SpliceCore

extension ListenerSpec {
    /// The fields a listener object may carry, in the API and in the config file.
    static let fields: Set<String> = ["name", "listen", "upstream", "connect_timeout_ms", "mediators", "splits", "max_sessions", "idle_timeout_ms"]

    /// Reads a listener from its JSON object (a `POST /api/v1/listeners` body or a config
    /// entry); every problem is a 422 naming the field.
    public init(json: JSON) throws(APIError) {
        let reader = try JSONObjectReader(json, allowed: Self.fields)
        let name = try reader.optionalString("name")
        if let name {
            guard (1...64).contains(name.count), name.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic
                || $0.properties.numericType != nil || "-_. ".unicodeScalars.contains($0) })
            else { throw .invalid("field 'name' must be 1-64 letters, digits, '-', '_', '.' or spaces") }
        }
        let listen = try HostPort(parsing: reader.requiredString("listen"), field: "listen")
        let upstream = try HostPort(parsing: reader.requiredString("upstream"), field: "upstream")
        guard upstream.port != 0 else { throw .invalid("field 'upstream' needs a port other than 0") }
        let timeout = try reader.optionalInt("connect_timeout_ms", min: 1, max: 600_000)
        let maxSessions = try reader.optionalInt("max_sessions", min: 1, max: 1_000_000)
        let idleTimeout = try reader.optionalInt("idle_timeout_ms", min: 1, max: 86_400_000)
        var templates: [HopRequest] = []
        for (index, entry) in (try reader.optionalArray("mediators") ?? []).enumerated() {
            do {
                templates.append(try HopRequest(json: entry))
            } catch {
                throw .invalid("mediators[\(index)]: \(error.detail)")
            }
        }
        var splits: [SplitRequest] = []
        for (index, entry) in (try reader.optionalArray("splits") ?? []).enumerated() {
            do {
                splits.append(try SplitRequest(json: entry))
            } catch {
                throw .invalid("splits[\(index)]: \(error.detail)")
            }
        }
        self.init(name: name, listen: listen, upstream: upstream,
                  connectTimeoutMs: timeout.map { Int($0) } ?? Self.defaultConnectTimeoutMs, mediators: templates,
                  splits: splits,
                  maxSessions: maxSessions.map { Int($0) }, idleTimeoutMs: idleTimeout.map { Int($0) })
    }
}

extension ListenerSpec {
    /// The spec as a listener object that `init(json:)` reads back (the state file's form).
    public var json: JSON {
        var object = JSONObject()
        if let name { object["name"] = .string(name) }
        object["listen"] = .string("\(listen)")
        object["upstream"] = .string("\(upstream)")
        object["connect_timeout_ms"] = .int(Int64(connectTimeoutMs))
        if !mediators.isEmpty { object["mediators"] = .array(mediators.map(\.json)) }
        if !splits.isEmpty { object["splits"] = .array(splits.map(\.json)) }
        if let maxSessions { object["max_sessions"] = .int(Int64(maxSessions)) }
        if let idleTimeoutMs { object["idle_timeout_ms"] = .int(Int64(idleTimeoutMs)) }
        return .object(object)
    }
}
