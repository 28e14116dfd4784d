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
            let listener = try request.idQuery("listener", prefix: "l")
            let limit = try request.intQuery("limit", in: 1...Self.maxLimit) ?? Self.defaultLimit
            let cursor = try request.idQuery("cursor", prefix: "s")
            let page = gateway.sessions(listener: listener, limit: limit, after: cursor)
            return .json(200, [
                "sessions": .array(page.sessions.map(\.json)),
                "next_cursor": page.nextCursor.map { .string("\($0)") } ?? .null,
            ])
        }
        router.add(.GET, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            return .json(200, try gateway.session(parameters.id("id", prefix: "s", kind: "session")).json)
        }
        router.add(.DELETE, "/api/v1/sessions/{id}") { request, parameters in
            try request.allowQuery([])
            try gateway.closeSession(parameters.id("id", prefix: "s", kind: "session"))
            return .noContent
        }
    }
}
