import SpliceCore
import SpliceDataPlane

/// `/api/v1/sessions`: list live sessions, show one, kill one.
struct SessionsHandler: Sendable {
    let gateway: Gateway

    /// Page size when `limit` is absent, and the most one page may hold.
    static let defaultLimit = 100
    static let maxLimit = 1000

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/sessions") { request, _ in
            try request.allowQuery(["listener", "limit", "cursor"])
            let listener = try request.idQuery("listener", as: ListenerID.self)
            let limit = try request.intQuery("limit", in: 1...Self.maxLimit) ?? Self.defaultLimit
            let cursor = try request.idQuery("cursor", as: SessionID.self)
            let page = gateway.sessions(listener: listener, limit: limit, after: cursor)
            var encoder = SessionEncoder()
            let sessions = JanssonValue.array()
            for session in page.sessions { sessions.append(encoder.encode(session)) }
            let body = JanssonValue.object()
            body.set("sessions", sessions)
            body.set("next_cursor", page.nextCursor.map { $0.jansson } ?? JSON.null.jansson())
            return .json(200, body)
        }
        router.add(.GET, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            var encoder = SessionEncoder()
            return .json(200, encoder.encode(try gateway.session(parameters.id("id", as: SessionID.self))))
        }
        router.addPending(.DELETE, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            return try gateway.closingSession(parameters.id("id", as: SessionID.self)).response { .noContent }
        }
    }
}
