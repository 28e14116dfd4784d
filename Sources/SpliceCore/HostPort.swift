/// A `host:port` address as operators write it: `127.0.0.1:7000`, `[::1]:80`, `localhost:6379`.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    /// Host name or IP literal, without IPv6 brackets.
    public var host: String
    /// TCP port; 0 asks for an ephemeral port where binding.
    public var port: Int

    /// An address from its parts.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; throws a 422 naming `field` when it is not one.
    public init(parsing text: String, field: String) throws(APIError) {
        func bad(_ why: String) -> APIError {
            .invalid("\(field) must be host:port (\(why)), got '\(text)'")
        }
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw bad("unclosed '['") }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw bad("missing port") }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw bad("missing port") }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") { throw bad("IPv6 hosts need brackets") }
        }
        guard !hostPart.isEmpty else { throw bad("empty host") }
        guard hostPart.utf8.count <= 253,
              hostPart.allSatisfy({ $0.isLetter || $0.isNumber || ".-_:%".contains($0) }),
              hostPart.unicodeScalars.allSatisfy(\.isASCII)
        else { throw bad("invalid host") }
        // Digits and dots only is an IPv4 literal, and only the dotted-quad form: resolvers
        // would also read `127.1`, `2130706433` or `127.0.0.01` (octal) as some address.
        if hostPart.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), !Self.isDottedQuad(hostPart) {
            throw bad("an IPv4 address is four numbers 0-255 without leading zeros")
        }
        guard let port = Self.port(portPart) else { throw bad("port must be 0-65535, digits only, no sign or leading zero") }
        self.host = String(hostPart)
        self.port = port
    }

    /// A port as decimal digits, as the API's `Address` pattern has it:
    /// `Int("+80")` and `Int("08")` would take a sign and leading zeros.
    private static func port(_ text: Substring) -> Int? {
        let digits = text.utf8
        guard (1...5).contains(digits.count), digits.allSatisfy({ (0x30...0x39).contains($0) }),
              digits.count == 1 || digits.first != UInt8(ascii: "0"),
              let port = Int(text), port <= 65535
        else { return nil }
        return port
    }

    /// Whether `text` is `a.b.c.d`, each part 0-255 in decimal without a leading zero.
    private static func isDottedQuad(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            (1...3).contains(part.count) && (part.count == 1 || part.first != "0")
                && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
    }

    /// `host:port`, with brackets around IPv6 hosts.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
