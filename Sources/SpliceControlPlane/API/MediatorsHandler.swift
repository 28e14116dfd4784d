import SpliceCore
import SpliceDataPlane

/// `/api/v1/mediators`: the registry of mediators sessions can splice by name.
struct MediatorsHandler: Sendable {
    let gateway: Gateway
    /// Decides and records changes (the state file, or the cluster's database).
    let authority: any ConfigAuthority
    /// The other nodes, asked before a mediator leaves the cluster; nil on its own.
    let cluster: ClusterAccess?

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/mediators") { request, _ in
            try request.allowQuery([])
            return .json(200, ["mediators": .array(gateway.registeredMediators().map(\.json))])
        }
        router.addPending(.POST, "/api/v1/mediators") { [authority] request, _ in
            try request.allowQuery([])
            let spec = try MediatorSpec(json: request.jsonBody(), allowExec: false)
            return .task { () throws(APIError) in
                var response = HTTPResponse.json(201, try await authority.registerMediator(spec).json)
                response.headers.set("Location", "/api/v1/mediators/\(spec.name)")
                return response
            }
        }
        router.add(.GET, "/api/v1/mediators/{name}") { request, parameters in
            try request.allowQuery([])
            return .json(200, try gateway.registeredMediator(MediatorName(parameters.require("name"))).json)
        }
        router.addPending(.DELETE, "/api/v1/mediators/{name}") { [authority, cluster] request, parameters in
            try request.allowQuery([])
            let name = try MediatorName(parameters.require("name"))
            return .task { () throws(APIError) in
                // 409 while spliced anywhere: the other nodes are asked before the database.
                // Always: no node passes a mediator's deletion on, so a peer's mark here
                // can only be a client's, skipping the check.
                if let cluster {
                    try await cluster.ensureUnusedElsewhere(name, request: request)
                }
                try await authority.unregisterMediator(name)
                return .noContent
            }
        }
    }
}
