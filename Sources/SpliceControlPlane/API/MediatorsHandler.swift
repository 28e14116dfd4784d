import SpliceCore
import SpliceDataPlane

/// `/api/v1/mediators`: the registry of mediators sessions can splice by name.
struct MediatorsHandler: Sendable {
    let gateway: Gateway
    /// Saves the configuration after a change, before answering.
    var persist: Persistence = .none

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/mediators") { request, _ in
            try request.allowQuery([])
            return .json(200, ["mediators": .array(gateway.registeredMediators().map(\.json))])
        }
        router.add(.POST, "/api/v1/mediators") { request, _ in
            try request.allowQuery([])
            let spec = try MediatorSpec(json: request.jsonBody(), allowExec: false)
            try gateway.registerMediator(spec)
            do throws(APIError) {
                try persist()
            } catch {
                // Not saved means not done: undo the registration (nothing uses it yet).
                try? gateway.unregisterMediator(spec.name)
                throw APIError.stateNotSaved("mediator not registered: \(error.detail)")
            }
            var response = HTTPResponse.json(201, try gateway.registeredMediator(spec.name).json)
            response.headers.set("Location", "/api/v1/mediators/\(spec.name)")
            return response
        }
        router.add(.GET, "/api/v1/mediators/{name}") { request, parameters in
            try request.allowQuery([])
            return .json(200, try gateway.registeredMediator(MediatorName(parameters.require("name"))).json)
        }
        router.add(.DELETE, "/api/v1/mediators/{name}") { request, parameters in
            try request.allowQuery([])
            let name = try MediatorName(parameters.require("name"))
            try gateway.unregisterMediator(name)
            do throws(APIError) {
                try persist()
            } catch {
                throw APIError.stateNotSaved("mediator '\(name)' unregistered, but \(error.detail)")
            }
            return .noContent
        }
    }
}
