import SpliceCore

/// An RFC 9457 problem document (`application/problem+json`).
public struct Problem: Sendable, Equatable {
    /// A URI reference naming the problem type.
    public var type: String
    /// A short summary that does not change between occurrences.
    public var title: String
    /// The HTTP status code.
    public var status: Int
    /// What went wrong this time.
    public var detail: String

    /// A problem with explicit members.
    public init(type: String, title: String, status: Int, detail: String) {
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
    }

    /// The problem an `APIError` renders as.
    public init(_ error: APIError) {
        self.init(type: error.type, title: error.title, status: error.status, detail: error.detail)
    }

    /// 500 for a bug in the gateway: no client input may produce it.
    public static func internalError(_ detail: String) -> Problem {
        Problem(type: "/problems/internal", title: "Internal error", status: 500, detail: detail)
    }

    /// 414 for a request target longer than the server accepts.
    public static func uriTooLong(_ detail: String) -> Problem {
        Problem(type: "/problems/uri-too-long", title: "URI too long", status: 414, detail: detail)
    }

    /// 431 for request headers larger than the server accepts.
    public static func headersTooLarge(_ detail: String) -> Problem {
        Problem(
            type: "/problems/headers-too-large", title: "Request header fields too large",
            status: 431, detail: detail)
    }

    /// What the admin acceptor answers itself besides 400, 413, 414 and 431.
    enum Refusal: Int, Sendable {
        /// 408: the request head did not arrive within the head deadline.
        case requestTimeout = 408
        /// 501: a transfer coding other than chunked (RFC 9112 §6.1).
        case notImplemented = 501
        /// 503: over the admin port's connection limit.
        case overloaded = 503
        /// 505: an HTTP version other than 1.0 and 1.1.
        case versionNotSupported = 505
    }

    /// The problem for a connection the acceptor refuses.
    static func refusal(_ refusal: Refusal, _ detail: String) -> Problem {
        let (slug, title) =
            switch refusal {
            case .requestTimeout: ("request-timeout", "Request timeout")
            case .notImplemented: ("not-implemented", "Not implemented")
            case .overloaded: ("overloaded", "Too many connections")
            case .versionNotSupported: ("version-not-supported", "HTTP version not supported")
            }
        return Problem(type: "/problems/\(slug)", title: title, status: refusal.rawValue, detail: detail)
    }

    /// The problem document as JSON, members in RFC order.
    public var json: JSON {
        ["type": .string(type), "title": .string(title), "status": .int(Int64(status)), "detail": .string(detail)]
    }
}
