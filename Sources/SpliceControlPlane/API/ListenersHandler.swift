import SpliceCore
import SpliceDataPlane

/// `/api/v1/listeners`: list, create, show and stop listeners.
struct ListenersHandler: Sendable {
    let gateway: Gateway
    /// Saves the configuration after a change, before answering.
    var persist: Persistence = .none

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/listeners") { request, _ in
            try request.allowQuery([])
            return .json(200, ["listeners": .array(gateway.listeners().map(\.json))])
        }
        // Binding and stopping go through the event loops: pending. The state file is
        // written once they are done, off the loops (GatewayFuture.whenComplete).
        router.addPending(.POST, "/api/v1/listeners") { [gateway, persist] request, _ in
            try request.allowQuery([])
            let spec = try ListenerSpec(json: request.jsonBody())
            return try gateway.addingListener(spec).response { listener throws(APIError) in
                do throws(APIError) {
                    try persist()
                } catch {
                    // Not saved means not done: a listener that would vanish on restart is
                    // undone. Blocks this dispatch thread (not a server thread) on a rare path.
                    try? gateway.removeListener(listener.id, closeSessions: true)
                    throw APIError.stateNotSaved("listener not created: \(error.detail)")
                }
                var response = HTTPResponse.json(201, listener.json)
                response.headers.set("Location", "/api/v1/listeners/\(listener.id)")
                return response
            }
        }
        router.add(.GET, "/api/v1/listeners/{id}") { request, parameters in
            try request.allowQuery([])
            return .json(200, try gateway.listener(parameters.id("id", as: ListenerID.self)).json)
        }
        router.addPending(.DELETE, "/api/v1/listeners/{id}") { [gateway, persist] request, parameters in
            try request.allowQuery(["close_sessions"])
            let id = try parameters.id("id", as: ListenerID.self)
            let closeSessions = try request.boolQuery("close_sessions") ?? false
            return try gateway.removingListener(id, closeSessions: closeSessions).response { () throws(APIError) in
                do throws(APIError) {
                    try persist()
                } catch {
                    throw APIError.stateNotSaved("listener \(id) stopped, but \(error.detail)")
                }
                return .noContent
            }
        }
    }
}
