import SpliceCore
import SpliceDataPlane

/// `/api/v1/listeners`: list, create, show and stop listeners.
struct ListenersHandler: Sendable {
    let gateway: Gateway

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/listeners") { request, _ in
            try request.allowQuery([])
            return .json(200, ["listeners": .array(gateway.listeners().map(\.json))])
        }
        router.add(.POST, "/api/v1/listeners") { request, _ in
            try request.allowQuery([])
            let spec = try ListenerSpec(json: request.jsonBody())
            let listener = try gateway.addListener(spec)
            var response = HTTPResponse.json(201, listener.json)
            response.headers.set("Location", "/api/v1/listeners/\(listener.id)")
            return response
        }
        router.add(.GET, "/api/v1/listeners/{id}") { request, parameters in
            try request.allowQuery([])
            return .json(200, try gateway.listener(parameters.id("id", prefix: "l", kind: "listener")).json)
        }
        router.add(.DELETE, "/api/v1/listeners/{id}") { request, parameters in
            try request.allowQuery(["close_sessions"])
            let id = try parameters.id("id", prefix: "l", kind: "listener")
            let closeSessions = try request.boolQuery("close_sessions") ?? false
            try gateway.removeListener(id, closeSessions: closeSessions)
            return .noContent
        }
    }
}
