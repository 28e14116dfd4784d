/// Why the admin HTTP server could not start.
public struct HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Kind: Sendable, Equatable {
        case badAddress, startFailed, insecureBinding, badToken
    }

    private let kind: Kind
    /// What went wrong, for the operator.
    public let description: String

    private init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// The host is not an IP literal or `localhost`, or the port is out of range.
    public static func badAddress(_ detail: String) -> HTTPServerError { .init(.badAddress, detail) }
    /// libmicrohttpd refused to start (port in use, bad option, no memory).
    public static func startFailed(_ detail: String) -> HTTPServerError { .init(.startFailed, detail) }
    /// A non-loopback admin address was asked for without an admin token.
    public static func insecureBinding(_ detail: String) -> HTTPServerError { .init(.insecureBinding, detail) }
    /// The admin token file is unreadable or empty.
    public static func badToken(_ detail: String) -> HTTPServerError { .init(.badToken, detail) }
}
