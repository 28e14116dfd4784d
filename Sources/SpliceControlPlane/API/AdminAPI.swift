import Foundation
import Logging
import SpliceDataPlane

/// The whole admin API: every route, behind the token rule, ready to hand to `HTTPServer`.
public struct AdminAPI: Sendable {
    /// Where the static files are and what to report about ourselves.
    public struct Options: Sendable {
        /// The console's directory (`web/`), or nil to serve none.
        public var webRoot: String?
        /// The contract (`openapi/openapi.yaml`), or nil.
        public var openAPIFile: String?
        /// The version reported by `/api/v1/health`.
        public var version: String
        /// The admin token, or nil for none.
        public var token: String?
        /// Called after a listener or mediator is created or deleted, before the API answers
        /// (the state file is written there); a failure is reported to the client.
        public var persist: Persistence
        /// Who decides changes to listeners and mediators; nil: this gateway alone, saving
        /// through `persist`.
        public var authority: (any ConfigAuthority)?
        /// The cluster this gateway is a node of (its live nodes, `/api/v1/nodes`, and the
        /// way to reach them), or nil when it runs alone.
        public var cluster: ClusterAccess?
        /// The gateway itself as `/api/v1/nodes` lists it when it runs alone.
        public var alone: (any ClusterMembership)?

        /// Options from their parts.
        public init(webRoot: String?, openAPIFile: String?, version: String, token: String?,
                    persist: Persistence = .none, authority: (any ConfigAuthority)? = nil,
                    cluster: ClusterAccess? = nil, alone: (any ClusterMembership)? = nil) {
            self.webRoot = webRoot
            self.openAPIFile = openAPIFile
            self.version = version
            self.token = token
            self.persist = persist
            self.authority = authority
            self.cluster = cluster
            self.alone = alone
        }
    }

    private let router: Router
    private let auth: AdminAuth
    private let metrics: GatewayMetrics
    private let cluster: ClusterAccess?
    private let gateway: Gateway

    /// The API over `gateway`.
    public init(gateway: Gateway, options: Options, logger: Logger) {
        var router = Router(logger: logger)
        HealthHandler(version: options.version, startedAt: Date()).register(in: &router)
        let authority = HandoffGatedAuthority(
            inner: options.authority ?? LocalAuthority(gateway: gateway, persist: options.persist), gateway: gateway)
        ListenersHandler(gateway: gateway, authority: authority).register(in: &router)
        SessionsHandler(gateway: gateway, cluster: options.cluster).register(in: &router)
        MediatorsHandler(gateway: gateway, authority: authority, cluster: options.cluster).register(in: &router)
        NodesHandler(membership: options.cluster?.membership ?? options.alone ?? SingleNodeMembership(
            gateway: gateway, name: "local", adminURL: "", version: options.version)).register(in: &router)
        MetricsHandler(gateway: gateway).register(in: &router)
        HopsHandler(gateway: gateway).register(in: &router)
        SplitsHandler(gateway: gateway, cluster: options.cluster).register(in: &router)
        EventsHandler(gateway: gateway, heartbeat: Heartbeat(),
                      feed: options.cluster.map { ClusterEventFeed(access: $0, token: options.token) },
                      cluster: options.cluster).register(in: &router)
        CaptureHandler(gateway: gateway).register(in: &router)
        StaticFilesHandler(webRoot: options.webRoot, openAPIFile: options.openAPIFile, logger: logger)
            .register(in: &router)
        self.router = router
        self.auth = AdminAuth(token: options.token)
        self.metrics = gateway.metrics
        self.cluster = options.cluster
        self.gateway = gateway
    }

    /// Answers one request, counting it and its latency by route once its response is known
    /// (for an answer that waits on the data plane, when the data plane has answered).
    public func handle(_ request: HTTPRequest) -> HTTPAnswer {
        let started = ContinuousClock.now
        // A session another node owns is acted on there (after this node's token check).
        let answer: HTTPAnswer
        let matched: String?
        if let early = auth.reject(request).map(HTTPAnswer.now) ?? refusedDuringHandoff(request).map(HTTPAnswer.now)
            ?? cluster?.forward(request) {
            (answer, matched) = (early, router.routePattern(for: request))
        } else {
            (answer, matched) = router.answer(request)
        }
        let method = Self.methodLabel(request.method)
        let route = matched ?? "unmatched"
        answer.whenComplete { [metrics] response in
            metrics.adminRequest(method: method, route: route, status: response.status,
                                 duration: ContinuousClock.now - started)
        }
        return answer
    }

    /// The method as a metrics label: a standard one by name, any other as "other", so a
    /// client cannot mint label values.
    private static func methodLabel(_ method: HTTPMethod) -> String {
        switch method {
        case .GET, .HEAD, .POST, .PUT, .PATCH, .DELETE, .OPTIONS: method.rawValue
        default: "other"
        }
    }

    /// A change asked for while this process hands its sessions to a successor: 409, since
    /// what it changes is on its way to the other process (reads are answered as usual).
    private func refusedDuringHandoff(_ request: HTTPRequest) -> HTTPResponse? {
        guard request.method != .GET, request.method != .HEAD, request.method != .OPTIONS,
              gateway.handoffUnderway else { return nil }
        return .problem(.conflict("a handoff to a new gateway process is under way; retry once it is done"))
    }

    /// Whether `path` (as sent: percent-escapes are decoded here, as routing does) is one
    /// whose answer is a long stream: the event stream and captures (for
    /// `Configuration.streamsResponse`).
    public static func streamsResponse(_ path: Substring) -> Bool {
        guard let segments = Router.decodedSegments(String(path)) else { return false }
        return segments == ["api", "v1", "events"] || segments.last == "capture"
    }

    /// The token rule on a request head, before its body is read: nil to
    /// go on, else the 401 to answer at once (for `Configuration.screenHead`).
    public func screenHead(_ request: HTTPRequest) -> HTTPResponse? {
        guard let rejection = auth.reject(request) else { return nil }
        metrics.adminRequest(method: Self.methodLabel(request.method),
                             route: router.routePattern(for: request) ?? "unmatched", status: rejection.status,
                             duration: .zero)
        return rejection
    }

    /// Every route the API serves, as method and pattern (for the contract test).
    var routes: [(method: HTTPMethod, pattern: String)] { router.routes }
}
