import SpliceCore
import SpliceDataPlane

/// `/api/v1/sessions`: list live sessions, show one, kill one.
struct SessionsHandler: Sendable {
    let gateway: Gateway
    /// The other nodes, when this gateway is one of a cluster.
    var cluster: ClusterAccess?

    /// This node's name in session objects; nil alone.
    private var node: String? { cluster?.membership.localNode.name }

    /// Page size when `limit` is absent, and the most one page may hold.
    static let defaultLimit = 100
    static let maxLimit = 1000

    func register(in router: inout Router) {
        guard let cluster else {
            router.add(.GET, "/api/v1/sessions") { request, _ in
                let query = try ListQuery(request)
                return .json(200, localPage(query).document())
            }
            return registerSingle(in: &router)
        }
        // Every node's sessions, unless the caller asks for this node's only (`scope=local`,
        // which is how the nodes ask each other).
        router.addPending(.GET, "/api/v1/sessions") { request, _ in
            let query = try ListQuery(request)
            let pending = PendingResponse()
            let page = localPage(query)
            if query.localOnly {
                pending.complete(.json(200, page.document()))
            } else {
                ClusterSessionPage(access: cluster).answer(
                    request, local: .init(owning: page.sessions.take(), hasMore: page.nextCursor != nil),
                    limit: query.limit, into: pending)
            }
            return pending
        }
        registerSingle(in: &router)
    }

    /// The query of a listing.
    private struct ListQuery {
        var listener: ListenerID?
        var limit: Int
        var cursor: SessionID?
        var localOnly: Bool

        init(_ request: HTTPRequest) throws(APIError) {
            try request.allowQuery(["listener", "limit", "cursor", "scope"])
            listener = try request.idQuery("listener", as: ListenerID.self)
            limit = try request.intQuery("limit", in: 1...SessionsHandler.maxLimit) ?? SessionsHandler.defaultLimit
            cursor = try request.idQuery("cursor", as: SessionID.self)
            switch request.query("scope") {
            case nil, "cluster": localOnly = false
            case "local": localOnly = true
            case let other?: throw .invalid("scope must be 'cluster' or 'local', got '\(other)'")
            }
        }
    }

    /// This node's part of a listing.
    private struct LocalPage: ~Copyable {
        let sessions: JanssonValue
        let nextCursor: SessionID?

        consuming func document() -> JanssonValue {
            let body = JanssonValue.object()
            body.set("sessions", sessions)
            body.set("next_cursor", nextCursor.map { $0.jansson } ?? JSON.null.jansson())
            return body
        }
    }

    private func localPage(_ query: ListQuery) -> LocalPage {
        let page = gateway.sessions(listener: query.listener, limit: query.limit, after: query.cursor)
        var encoder = SessionEncoder(node: node)
        let sessions = JanssonValue.array()
        for session in page.sessions { sessions.append(encoder.encode(session)) }
        return LocalPage(sessions: sessions, nextCursor: page.nextCursor)
    }

    /// One session, shown and killed (a cluster forwards other nodes' to them first).
    private func registerSingle(in router: inout Router) {
        router.add(.GET, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            var encoder = SessionEncoder(node: node)
            return .json(200, encoder.encode(try gateway.session(parameters.id("id", as: SessionID.self))))
        }
        router.addPending(.DELETE, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            return try gateway.closingSession(parameters.id("id", as: SessionID.self)).response { .noContent }
        }
    }
}
