import SpliceCore

/// What a handler answers: a status, header fields and a body.
public struct HTTPResponse: Sendable {
    /// The body: bytes known up front, or a stream the server pulls from.
    public enum Body: Sendable {
        /// A complete body; sent with `Content-Length`.
        case bytes([UInt8])
        /// A body produced over time (Server-Sent Events); sent chunked.
        case stream(StreamSource)
    }

    /// The HTTP status code.
    public var status: Int
    /// The response header fields (MHD adds `Date`, `Content-Length`, framing).
    public var headers: HTTPHeaders
    /// The body.
    public var body: Body

    /// A response with explicit parts.
    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: Body = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body bytes, or nil for a stream.
    public var bodyBytes: [UInt8]? {
        if case .bytes(let bytes) = body { return bytes }
        return nil
    }

    /// A JSON document (`application/json`).
    public static func json(_ status: Int = 200, _ json: JSON) -> HTTPResponse {
        .bytes(status, json.serializedBytes(), contentType: "application/json")
    }

    /// A JSON document built straight in jansson (`application/json`).
    static func json(_ status: Int = 200, _ document: borrowing JanssonValue) -> HTTPResponse {
        .bytes(status, document.serializedBytes(), contentType: "application/json")
    }

    /// An RFC 9457 problem for `error`.
    public static func problem(_ error: APIError) -> HTTPResponse {
        problem(Problem(error))
    }

    /// An RFC 9457 problem (`application/problem+json`).
    public static func problem(_ problem: Problem) -> HTTPResponse {
        .bytes(problem.status, problem.json.serializedBytes(), contentType: "application/problem+json")
    }

    /// 204 with no body.
    public static var noContent: HTTPResponse { HTTPResponse(status: 204) }

    /// Plain text (`text/plain; charset=utf-8` unless told otherwise).
    public static func text(
        _ status: Int = 200, _ text: String, contentType: String = "text/plain; charset=utf-8"
    ) -> HTTPResponse {
        .bytes(status, Array(text.utf8), contentType: contentType)
    }

    /// Arbitrary bytes, e.g. a static file, with their content type.
    public static func bytes(_ status: Int = 200, _ bytes: [UInt8], contentType: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": contentType], body: .bytes(bytes))
    }

    /// A streamed body; the server sends what `source` is fed until it finishes.
    public static func stream(
        _ source: StreamSource, status: Int = 200, contentType: String = "text/event-stream"
    ) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: ["Content-Type": contentType, "Cache-Control": "no-cache"],
            body: .stream(source))
    }
}
