import SpliceCore
import SpliceDataPlane

/// `/api/v1/listeners`: list, create, show and stop listeners.
struct ListenersHandler: Sendable {
    let gateway: Gateway
    /// Decides and records changes (the state file, or the cluster's database).
    let authority: any ConfigAuthority

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/listeners") { [gateway, authority] request, _ in
            try request.allowQuery([])
            return .json(200, ["listeners": .array(Self.all(gateway, authority).map { $0.json(binds: authority) })])
        }
        // Binding and stopping go through the event loops and the authority: pending.
        router.addPending(.POST, "/api/v1/listeners") { [authority] request, _ in
            try request.allowQuery([])
            let spec = try ListenerSpec(json: request.jsonBody())
            return .task { () throws(APIError) in
                let listener = try await authority.addListener(spec)
                var response = HTTPResponse.json(201, listener.json(binds: authority))
                response.headers.set("Location", "/api/v1/listeners/\(listener.id)")
                return response
            }
        }
        router.add(.GET, "/api/v1/listeners/{id}") { [gateway, authority] request, parameters in
            try request.allowQuery([])
            let id = try parameters.id("id", as: ListenerID.self)
            guard let listener = Self.all(gateway, authority).first(where: { $0.id == id }) else {
                throw APIError.notFound("no listener \(id)")
            }
            return .json(200, listener.json(binds: authority))
        }
        router.addPending(.DELETE, "/api/v1/listeners/{id}") { [authority] request, parameters in
            try request.allowQuery(["close_sessions"])
            let id = try parameters.id("id", as: ListenerID.self)
            let closeSessions = try request.boolQuery("close_sessions") ?? false
            return .task { () throws(APIError) in
                try await authority.removeListener(id, closeSessions: closeSessions)
                return .noContent
            }
        }
    }
}

extension ListenersHandler {
    /// The listeners held here and, in a cluster, those whose bind failed here, by id.
    static func all(_ gateway: Gateway, _ authority: any ConfigAuthority) -> [ListenerSnapshot] {
        let held = gateway.listeners()
        let others = authority.listenersNotHeld(besides: Set(held.map(\.id)))
        return others.isEmpty ? held : (held + others).sorted { $0.id < $1.id }
    }
}

extension ListenerSnapshot {
    /// The listener object, with each node's bind state when the configuration is shared.
    func json(binds authority: any ConfigAuthority) -> JSON {
        guard let binds = authority.binds(of: id), case .object(var object) = json else { return json }
        object["nodes"] = .array(binds.map(\.json))
        return .object(object)
    }
}
