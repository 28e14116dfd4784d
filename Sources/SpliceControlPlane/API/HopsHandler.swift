import SpliceCore
import SpliceDataPlane

/// `/api/v1/sessions/{id}/mediators`: splice a mediator into a live session, drain one out.
struct HopsHandler: Sendable {
    let gateway: Gateway

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/sessions/{id}/mediators") { request, parameters in
            try request.allowQuery([])
            let session = try gateway.session(parameters.id("id", as: SessionID.self))
            return .json(200, ["mediators": .array(session.hops.map(\.json))])
        }
        // Both wait for the data plane (a dial, a drain of up to drain_timeout_ms): pending.
        router.addPending(.POST, "/api/v1/sessions/{id}/mediators") { request, parameters in
            try request.allowQuery([])
            let id = try parameters.id("id", as: SessionID.self)
            let hopRequest = try HopRequest(json: request.jsonBody())
            return try gateway.splicing(session: id, hopRequest).response { hop in
                var response = HTTPResponse.json(201, hop.json)
                response.headers.set("Location", "/api/v1/sessions/\(id)/mediators/\(hop.id)")
                return response
            }
        }
        router.addPending(.DELETE, "/api/v1/sessions/{id}/mediators/{hop}") { request, parameters in
            try request.allowQuery([])
            let id = try parameters.id("id", as: SessionID.self)
            let hop = try parameters.id("hop", as: HopID.self)
            return try gateway.removingHop(session: id, hop: hop).response { .json(200, $0.json(hop: hop)) }
        }
    }
}
