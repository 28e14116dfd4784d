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

        /// Options from their parts.
        public init(webRoot: String?, openAPIFile: String?, version: String, token: String?) {
            self.webRoot = webRoot
            self.openAPIFile = openAPIFile
            self.version = version
            self.token = token
        }
    }

    private let router: Router
    private let auth: AdminAuth

    /// The API over `gateway`.
    public init(gateway: Gateway, options: Options, logger: Logger) {
        var router = Router(logger: logger)
        HealthHandler(version: options.version, startedAt: Date()).register(in: &router)
        ListenersHandler(gateway: gateway).register(in: &router)
        SessionsHandler(gateway: gateway).register(in: &router)
        MediatorsHandler(gateway: gateway).register(in: &router)
        HopsHandler(gateway: gateway).register(in: &router)
        StaticFilesHandler(webRoot: options.webRoot, openAPIFile: options.openAPIFile, logger: logger)
            .register(in: &router)
        self.router = router
        self.auth = AdminAuth(token: options.token)
    }

    /// Answers one request.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        auth.reject(request) ?? router.handle(request)
    }
}
