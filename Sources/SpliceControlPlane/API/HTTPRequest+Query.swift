import SpliceCore

extension HTTPRequest {
    /// Rejects query parameters the endpoint does not know, so a typo is an error rather
    /// than a silently ignored filter.
    func allowQuery(_ names: Set<String>) throws(APIError) {
        if let unknown = queryItems.first(where: { !names.contains($0.name) }) {
            throw .invalid("unknown query parameter '\(unknown.name)'")
        }
        // `limit=1&limit=2` would otherwise mean whichever one the code reads.
        var seen = Set<String>()
        if let repeated = queryItems.first(where: { !seen.insert($0.name).inserted }) {
            throw .invalid("query parameter '\(repeated.name)' is given more than once")
        }
    }

    /// A boolean query parameter (`true`/`false`, `1`/`0`), nil when absent.
    func boolQuery(_ name: String) throws(APIError) -> Bool? {
        guard let value = query(name) else { return nil }
        switch value.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw .invalid("query parameter '\(name)' must be true or false, got '\(value)'")
        }
    }

    /// Whether `scope=local` asks for this node's own (sessions, events) rather than the
    /// whole cluster's (`scope=cluster`, the default); 422 for anything else.
    func localScope() throws(APIError) -> Bool {
        switch query("scope") {
        case nil, "cluster": false
        case "local": true
        case let other?: throw .invalid("scope must be 'cluster' or 'local', got '\(other)'")
        }
    }

    /// An integer query parameter in `range`, nil when absent.
    func intQuery(_ name: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let value = query(name) else { return nil }
        // Decimal digits only, as the contract's integer: `Int()` would also take `+5` and `05`.
        let digits = value.utf8
        guard (1...10).contains(digits.count), digits.allSatisfy({ (0x30...0x39).contains($0) }),
              digits.count == 1 || digits.first != UInt8(ascii: "0"),
              let int = Int(value), range.contains(int)
        else {
            throw .invalid("query parameter '\(name)' must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(value)'")
        }
        return int
    }

    /// An identifier query parameter of one kind, nil when absent; another kind's id is
    /// as malformed as any other text (422).
    func idQuery<Kind: IdentifierKind>(_ name: String, as _: Identifier<Kind>.Type) throws(APIError) -> Identifier<Kind>? {
        guard let value = query(name) else { return nil }
        guard let id = Identifier<Kind>(value) else {
            throw .invalid("query parameter '\(name)' must be an id like \(Kind.prefix)1, got '\(value)'")
        }
        return id
    }
}

extension RouteParameters {
    /// The path parameter `name` as an identifier of one kind; a malformed one, or one of
    /// another kind (`/sessions/h1`), names no resource (404).
    func id<Kind: IdentifierKind>(_ name: String, as _: Identifier<Kind>.Type) throws(APIError) -> Identifier<Kind> {
        let text = try require(name)
        guard let id = Identifier<Kind>(text) else { throw .notFound("no \(Kind.noun) \(text)") }
        return id
    }
}
