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
                .bytes(200, localPage(try ListQuery(request)).document, contentType: "application/json")
            }
            return registerSingle(in: &router)
        }
        // Every node's sessions, unless the caller asks for this node's only (`scope=local`,
        // which is how the nodes ask each other).
        router.addPending(.GET, "/api/v1/sessions") { request, _ in
            let query = try ListQuery(request)
            let pending = PendingResponse()
            if query.localOnly {
                pending.complete(.bytes(200, localPage(query).document, contentType: "application/json"))
            } else {
                ClusterSessionPage(access: cluster).answer(request, limit: query.limit, cursor: query.cursor, local: { need in
                    var part = query
                    part.limit = need
                    return localPage(part)
                }, into: pending)
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
            localOnly = try request.localScope()
        }
    }

    /// This node's page: `{"sessions":[…],"next_cursor":…}`, and where each session lies
    /// in it (for a cluster's merge).
    private func localPage(_ query: ListQuery) -> ClusterSessionPage.Part {
        let page = gateway.sessions(listener: query.listener, limit: query.limit, after: query.cursor)
        var writer = SessionWriter(node: node, capacity: 64 + page.sessions.count * 320)
        var ranges: [(number: UInt64, range: Range<Int>)] = []
        ranges.reserveCapacity(page.sessions.count)
        writer.append(#"{"sessions":["#)
        for (position, session) in page.sessions.enumerated() {
            if position > 0 { writer.append(",") }
            let start = writer.bytes.count
            writer.append(session)
            ranges.append((session.id.number, start..<writer.bytes.count))
        }
        writer.append(#"],"next_cursor":"#)
        writer.append(id: page.nextCursor)
        writer.append("}")
        return .init(text: writer.bytes, sessions: ranges, hasMore: page.nextCursor != nil)
    }

    /// One session, shown and killed (a cluster forwards other nodes' to them first).
    private func registerSingle(in router: inout Router) {
        router.add(.GET, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            var writer = SessionWriter(node: node)
            writer.append(try gateway.session(parameters.id("id", as: SessionID.self)))
            return .bytes(200, writer.bytes, contentType: "application/json")
        }
        router.addPending(.DELETE, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            return try gateway.closingSession(parameters.id("id", as: SessionID.self)).response { .noContent }
        }
    }
}
