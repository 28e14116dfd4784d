import Logging
import SpliceCore

/// Maps method and path to handlers, and every failure to a problem+json.
///
/// Patterns are literal segments and `{name}` parameters; a final
/// `{name...}` takes the rest of the path (static files). Segments are
/// percent-decoded after splitting, so `%2F` stays inside a parameter, and a
/// segment that does not decode to UTF-8 matches nothing (404). HEAD is served
/// by the GET route (MHD sends no body for HEAD).
public struct Router: Sendable {
    /// A route handler: the request and its path parameters in, a response
    /// out; thrown `APIError`s become problems.
    public typealias Handler = @Sendable (HTTPRequest, RouteParameters) throws -> HTTPResponse
    /// A route handler that needs the data plane: it returns at once a response to be
    /// completed later, and the server thread goes on serving others meanwhile.
    public typealias PendingHandler = @Sendable (HTTPRequest, RouteParameters) throws -> PendingResponse

    private struct Route: Sendable {
        let method: HTTPMethod
        let pattern: [Segment]
        let handler: @Sendable (HTTPRequest, RouteParameters) throws -> HTTPAnswer
        /// The pattern as registered, a low-cardinality label for metrics.
        var text = ""
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
        case rest(String)
    }

    private var storage: [Route] = []
    private let logger: Logger

    /// An empty router; unexpected handler errors are logged to `logger`.
    public init(logger: Logger = Logger(label: "splicegate.router")) {
        self.logger = logger
    }

    /// Registers `handler` for `method` on `pattern`, e.g. `/api/v1/listeners/{id}`.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, _ handler: @escaping Handler) {
        add(method, pattern, answering: { request, parameters in .now(try handler(request, parameters)) })
    }

    /// Registers a handler whose response waits for the data plane, e.g. a drain.
    public mutating func addPending(_ method: HTTPMethod, _ pattern: String, _ handler: @escaping PendingHandler) {
        add(method, pattern, answering: { request, parameters in .later(try handler(request, parameters)) })
    }

    /// Every registered route as method and pattern, in registration order (what the
    /// contract test compares with the OpenAPI document).
    public var routes: [(method: HTTPMethod, pattern: String)] {
        storage.map { ($0.method, $0.text) }
    }

    private mutating func add(
        _ method: HTTPMethod, _ pattern: String,
        answering handler: @escaping @Sendable (HTTPRequest, RouteParameters) throws -> HTTPAnswer
    ) {
        let segments = pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map {
            segment -> Segment in
            guard segment.hasPrefix("{"), segment.hasSuffix("}") else { return .literal(String(segment)) }
            let name = segment.dropFirst().dropLast()
            return name.hasSuffix("...") ? .rest(String(name.dropLast(3))) : .parameter(String(name))
        }
        storage.append(Route(method: method, pattern: segments, handler: handler, text: pattern))
    }

    /// Answers `request`: the matching route's answer, or a 404/405/415 problem.
    public func handle(_ request: HTTPRequest) -> HTTPAnswer {
        answer(request).answer
    }

    /// Answers `request` as `handle` does, with the pattern `routePattern(for:)` gives for
    /// it, from the same match.
    public func answer(_ request: HTTPRequest) -> (answer: HTTPAnswer, route: String?) {
        guard let segments = Self.decodedSegments(request.path) else {
            return (.now(.problem(.notFound("no resource at \(request.path)"))), nil)
        }
        let matches = storage.compactMap { route in Self.match(route.pattern, segments).map { (route, $0) } }
        guard !matches.isEmpty else { return (.now(.problem(.notFound("no resource at \(request.path)"))), nil) }
        let method = request.method == .HEAD ? HTTPMethod.GET : request.method
        guard let (route, parameters) = Self.best(matches.filter { $0.0.method == method }) else {
            var allowed = Set(matches.map(\.0.method.rawValue))
            if allowed.contains("GET") { allowed.insert("HEAD") }
            var response = HTTPResponse.problem(
                .methodNotAllowed("\(request.method) is not allowed on \(request.path)"))
            response.headers.set("Allow", allowed.sorted().joined(separator: ", "))
            return (.now(response), Self.best(matches)?.0.text)
        }
        if !request.body.isEmpty, !request.hasJSONContentType {
            return (.now(.problem(request.unsupportedMediaType)), route.text)
        }
        do {
            return (try route.handler(request, parameters), route.text)
        } catch let error as APIError {
            return (.now(.problem(error)), route.text)
        } catch {
            // A bug, not bad input: handlers must map peer failures to APIError.
            logger.error("handler failed", metadata: [
                "method": "\(request.method)", "path": "\(request.path)", "error": "\(error)",
            ])
            return (.now(.problem(.internalError("internal error handling \(request.method) \(request.path)"))), route.text)
        }
    }

    /// The pattern of the route `request` is answered by (or, for a 405, of a route on its
    /// path); nil when no route matches the path.
    public func routePattern(for request: HTTPRequest) -> String? {
        guard let segments = Self.decodedSegments(request.path) else { return nil }
        let method = request.method == .HEAD ? HTTPMethod.GET : request.method
        let matches = storage.compactMap { route in Self.match(route.pattern, segments).map { (route, $0) } }
        return (Self.best(matches.filter { $0.0.method == method }) ?? Self.best(matches))?.0.text
    }

    /// The most literal of `matches` (`/sessions/stats` wins over `/sessions/{id}`).
    private static func best(_ matches: [(Route, RouteParameters)]) -> (Route, RouteParameters)? {
        matches.max { literalCount($0.0.pattern) < literalCount($1.0.pattern) }
    }

    /// The path split on `/` and percent-decoded, without the leading empty
    /// segment; nil if an escape is malformed or a segment is not UTF-8.
    public static func decodedSegments(_ path: String) -> [String]? {
        var segments: [String] = []
        for raw in path.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            guard let bytes = HTTPRequest.percentDecoded(raw, plusIsSpace: false),
                let segment = String(validating: bytes, as: UTF8.self)
            else { return nil }
            segments.append(segment)
        }
        return segments
    }

    private static func match(_ pattern: [Segment], _ segments: [String]) -> RouteParameters? {
        var values: [String: String] = [:]
        for (index, part) in pattern.enumerated() {
            switch part {
            case .rest(let name):
                guard index <= segments.count else { return nil }
                values[name] = segments[index...].joined(separator: "/")
                return RouteParameters(values)
            case .literal(let text):
                guard index < segments.count, segments[index] == text else { return nil }
            case .parameter(let name):
                guard index < segments.count, !segments[index].isEmpty else { return nil }
                values[name] = segments[index]
            }
        }
        return pattern.count == segments.count ? RouteParameters(values) : nil
    }

    private static func literalCount(_ pattern: [Segment]) -> Int {
        pattern.count { if case .literal = $0 { true } else { false } }
    }
}
