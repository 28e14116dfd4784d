import SpliceCore

extension MediatorSpec {
    static let fields: Set<String> = ["name", "kind", "address", "command", "proxy_protocol"]

    /// Reads a mediator registration. `exec` mediators run local commands, so only the
    /// config file (`allowExec`) may define them; the API takes `tcp` ones.
    public init(json: JSON, allowExec: Bool) throws(APIError) {
        let reader = try JSONObjectReader(json, allowed: Self.fields)
        let name = try reader.requiredString("name")
        guard (1...64).contains(name.count),
              name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0.properties.numericType != nil || "-_.".unicodeScalars.contains($0)) })
        else { throw .invalid("field 'name' must be 1-64 ASCII letters, digits, '-', '_' or '.'") }
        let proxyProtocol = try reader.optionalBool("proxy_protocol") ?? false
        switch try reader.optionalEnum("kind", ["tcp", "exec"]) ?? "tcp" {
        case "exec":
            guard allowExec else { throw .invalid("exec mediators can only be defined in the config file") }
            guard !reader.contains("address") else { throw .invalid("field 'address' is for tcp mediators") }
            guard !proxyProtocol else { throw .invalid("proxy_protocol is for tcp mediators") }
            guard let command = try reader.optionalArray("command"), !command.isEmpty,
                  let argv = Optional(command.compactMap(\.string)), argv.count == command.count,
                  argv.allSatisfy({ !$0.isEmpty })
            else { throw .invalid("field 'command' must be a non-empty array of non-empty strings") }
            self.init(name: MediatorName(name), kind: .exec(argv))
        default:
            guard !reader.contains("command") else { throw .invalid("field 'command' is for exec mediators") }
            let address = try HostPort(parsing: reader.requiredString("address"), field: "address")
            guard address.port != 0 else { throw .invalid("field 'address' needs a port other than 0") }
            self.init(name: MediatorName(name), kind: .tcp(address), proxyProtocol: proxyProtocol)
        }
    }
}

extension MediatorSnapshot {
    /// The mediator object of the API.
    var json: JSON {
        var object = JSONObject()
        object["name"] = .string(spec.name.text)
        switch spec.kind {
        case .tcp(let address):
            object["kind"] = "tcp"
            object["address"] = .string("\(address)")
            object["proxy_protocol"] = .bool(spec.proxyProtocol)
        case .exec(let argv):
            object["kind"] = "exec"
            object["command"] = .array(argv.map { .string($0) })
        }
        object["in_use"] = .int(Int64(inUse))
        return .object(object)
    }
}

extension MediatorSpec {
    /// The registration as an object that `init(json:allowExec:)` reads back (the state file's form).
    public var json: JSON {
        var object = JSONObject()
        object["name"] = .string(name.text)
        switch kind {
        case .tcp(let address):
            object["kind"] = "tcp"
            object["address"] = .string("\(address)")
            if proxyProtocol { object["proxy_protocol"] = .bool(true) }
        case .exec(let argv):
            object["kind"] = "exec"
            object["command"] = .array(argv.map { .string($0) })
        }
        return .object(object)
    }
}
