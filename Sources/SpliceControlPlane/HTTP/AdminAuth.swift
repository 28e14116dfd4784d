#if canImport(Glibc)
import Glibc
#endif
import SpliceCore

/// The admin token rule: when a token is configured, every request under
/// `/api/` and `/metrics` except `GET /api/v1/health` must carry
/// `Authorization: Bearer <token>`; the event stream may pass it as
/// `?access_token=` instead, since `EventSource` cannot set headers.
public struct AdminAuth: Sendable {
    private let token: [UInt8]?

    /// A rule with `token`, or one that lets everything through when nil.
    public init(token: String?) {
        self.token = token.map { Array($0.utf8) }
    }

    /// Whether a token is configured.
    public var isEnabled: Bool { token != nil }

    /// Whether `request` needs the token (regardless of whether one is set).
    ///
    /// Decided on the decoded path, as the router sees it, so `/%61pi/…`
    /// cannot slip past; a path that does not decode is treated as protected.
    public static func isProtected(_ request: HTTPRequest) -> Bool {
        guard let segments = Router.decodedSegments(request.path) else { return true }
        guard segments.first == "api" || segments.first == "metrics" else { return false }
        let isGet = request.method == .GET || request.method == .HEAD
        return !(isGet && segments == ["api", "v1", "health"])
    }

    /// Nil if `request` may proceed, else the 401 problem to answer.
    public func reject(_ request: HTTPRequest) -> HTTPResponse? {
        guard let token, Self.isProtected(request) else { return nil }
        var presented: String?
        if let authorization = request.headers["Authorization"] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { presented = parts[1].trimmingSpaces() }
        }
        if presented == nil, Router.decodedSegments(request.path) == ["api", "v1", "events"] {
            presented = request.query("access_token")
        }
        if let presented, Self.constantTimeEquals(Array(presented.utf8), token) { return nil }
        var response = HTTPResponse.problem(.unauthorized(
            presented == nil ? "missing admin token (Authorization: Bearer …)" : "wrong admin token"))
        response.headers.set("WWW-Authenticate", "Bearer realm=\"splicegate\"")
        return response
    }

    /// `handler` behind this rule.
    public func protect(_ handler: @escaping HTTPServer.Handler) -> HTTPServer.Handler {
        { request in reject(request).map(HTTPAnswer.now) ?? handler(request) }
    }

    /// Compares without exiting early: the time depends only on the lengths.
    public static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference = UInt(bitPattern: lhs.count ^ rhs.count)
        for index in 0..<max(lhs.count, rhs.count) {
            let left = index < lhs.count ? lhs[index] : 0
            let right = index < rhs.count ? rhs[index] : 0
            difference |= UInt(left ^ right)
        }
        return difference == 0
    }

    /// Reads a token file, ignoring trailing newlines (`\n`, `\r\n`); an
    /// empty or unreadable file is an error.
    public static func readTokenFile(_ path: String) throws(HTTPServerError) -> String {
        guard let file = fopen(path, "rb") else {
            throw .badToken("cannot read admin token file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            bytes.append(contentsOf: chunk.prefix(count))
            if count < chunk.count { break }
            if bytes.count > 64 * 1024 { throw .badToken("admin token file \(path) is larger than 64 KiB") }
        }
        if ferror(file) != 0 { throw .badToken("cannot read admin token file \(path)") }
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard !bytes.isEmpty else { throw .badToken("admin token file \(path) is empty") }
        guard let token = String(validating: bytes, as: UTF8.self) else {
            throw .badToken("admin token file \(path) is not UTF-8 text")
        }
        return token
    }

    /// Refuses a non-loopback admin address without a token. Loopback is
    /// 127.0.0.0/8, `::1` and `localhost`; anything else, `0.0.0.0` and `::`
    /// included, exposes the API to the network.
    public static func checkBinding(host: String, tokenConfigured: Bool) throws(HTTPServerError) {
        guard let address = IPAddress(host: host, port: 0) else {
            throw .badAddress("admin host '\(host)' is not an IP literal or localhost")
        }
        if !address.isLoopback && !tokenConfigured {
            throw .insecureBinding(
                "refusing to serve the admin API on non-loopback address \(address.host) without an admin token "
                    + "(set --admin-token-file or SPLICEGATE_ADMIN_TOKEN)")
        }
    }
}
