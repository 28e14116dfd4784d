import SpliceCore

/// One request as the server hands it to a handler: fully received, body capped.
public struct HTTPRequest: Sendable {
    /// The request method.
    public var method: HTTPMethod
    /// The path as sent, still percent-encoded, without the query string.
    /// The router decodes it segment by segment so `%2F` stays inside a segment.
    public var path: String
    /// Query parameters in order, names and values percent-decoded (`+` is a space).
    public var queryItems: [(name: String, value: String)]
    /// The request header fields.
    public var headers: HTTPHeaders
    /// The request body (at most the server's body cap).
    public var body: [UInt8]
    /// The peer address, `host:port` (IPv6 hosts in brackets).
    public var remoteAddress: String

    /// A request; `target` may carry a query string, which is split off and decoded.
    public init(
        method: HTTPMethod, target: String, headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [], remoteAddress: String = ""
    ) {
        self.method = method
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = parts.first.map(String.init) ?? ""
        self.queryItems = parts.count > 1 ? Self.parseQuery(parts[1]) : []
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
    }

    /// The first value of query parameter `name`, or nil.
    public func query(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// The body parsed as JSON, after checking it is declared as JSON.
    ///
    /// A body whose `Content-Type` is not `application/json` (parameters such
    /// as `charset` allowed) is a 415, an empty or malformed one a 400.
    public func jsonBody() throws(APIError) -> JSON {
        guard hasJSONContentType else { throw unsupportedMediaType }
        guard !body.isEmpty else { throw .malformed("request body is empty, expected JSON") }
        return try JSON.parse(body)
    }

    /// Whether `Content-Type` is `application/json`, parameters such as
    /// `charset` allowed.
    public var hasJSONContentType: Bool {
        guard let value = headers["Content-Type"] else { return false }
        let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let mediaType = value.utf8.prefix { $0 != UInt8(ascii: ";") }.drop(while: isSpace)
        let trimmed = mediaType.prefix(mediaType.count - mediaType.reversed().prefix(while: isSpace).count)
        return trimmed.elementsEqual("application/json".utf8) { HTTPHeaders.asciiLowercased($0) == $1 }
    }

    /// The 415 for a body that is not declared as JSON.
    var unsupportedMediaType: APIError {
        .unsupportedMediaType(
            "expected Content-Type application/json, got \(headers["Content-Type"].map { "'\($0)'" } ?? "none")")
    }

    /// The body as a JSON object whose keys must all be in `allowed` (422 otherwise).
    public func jsonObject(allowed: Set<String>) throws(APIError) -> JSONObjectReader {
        try JSONObjectReader(jsonBody(), allowed: allowed)
    }

    /// Splits and decodes `a=1&b=x%20y`; a name without `=` gets an empty value.
    static func parseQuery(_ query: Substring) -> [(name: String, value: String)] {
        query.split(separator: "&").map { pair in
            let nameValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (part: Substring) in
                String(decoding: percentDecoded(part, plusIsSpace: true) ?? Array(part.utf8), as: UTF8.self)
            }
            return (decode(nameValue[0]), nameValue.count > 1 ? decode(nameValue[1]) : "")
        }
    }

    /// The bytes `text` percent-encodes, or nil if an escape is malformed.
    static func percentDecoded(_ text: Substring, plusIsSpace: Bool) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue)
                else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return bytes
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        let isSpace = { (c: Character) in c == " " || c == "\t" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
