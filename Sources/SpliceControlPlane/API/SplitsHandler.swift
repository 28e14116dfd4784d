import SpliceCore
import SpliceDataPlane

/// `/api/v1/sessions/{id}/splits` and `/failover`: copy a live session to recipients, and
/// promote a replica to server.
struct SplitsHandler: Sendable {
    let gateway: Gateway
    /// The cluster this gateway is a node of: its name goes into session objects.
    var cluster: ClusterAccess?

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/sessions/{id}/splits") { request, parameters in
            try request.allowQuery([])
            let session = try gateway.session(parameters.id("id", as: SessionID.self))
            return .json(200, ["splits": .array(session.splits.map(\.json))])
        }
        router.addPending(.POST, "/api/v1/sessions/{id}/splits") { request, parameters in
            try request.allowQuery([])
            let id = try parameters.id("id", as: SessionID.self)
            return try gateway.addingSplit(session: id, SplitRequest(json: request.jsonBody())).response { split in
                var response = HTTPResponse.json(201, split.json)
                response.headers.set("Location", "/api/v1/sessions/\(id)/splits/\(split.id)")
                return response
            }
        }
        router.addPending(.DELETE, "/api/v1/sessions/{id}/splits/{split}") { request, parameters in
            try request.allowQuery([])
            return try gateway.removingSplit(session: parameters.id("id", as: SessionID.self),
                                             split: parameters.id("split", as: SplitID.self))
                .response { .noContent }
        }
        router.addPending(.POST, "/api/v1/sessions/{id}/failover") { request, parameters in
            try request.allowQuery([])
            let id = try parameters.id("id", as: SessionID.self)
            let reader = try JSONObjectReader(request.jsonBody(), allowed: ["split"])
            let text = try reader.requiredString("split")
            guard let split = SplitID(text) else {
                throw APIError.invalid("field 'split' must be a split id like x1, got '\(text)'")
            }
            return try gateway.failingOver(session: id, split: split).response { [cluster] in .json(200, $0.json(node: cluster?.membership.localNode.name)) }
        }
    }
}
