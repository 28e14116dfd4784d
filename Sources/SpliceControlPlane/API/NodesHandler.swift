import SpliceCore

/// `GET /api/v1/nodes`: the live gateways of the cluster (a lone gateway lists itself).
struct NodesHandler: Sendable {
    let membership: any ClusterMembership

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/nodes") { [membership] request, _ in
            try request.allowQuery([])
            let local = membership.localNode.name
            let nodes = membership.liveNodes().sorted { $0.name < $1.name }
            return .json(200, ["nodes": .array(nodes.map { $0.json(isSelf: $0.name == local) })])
        }
    }
}

extension ClusterNode {
    /// The node object of the API.
    func json(isSelf: Bool) -> JSON {
        var object = JSONObject()
        object["name"] = .string(name)
        object["admin_url"] = .string(adminURL)
        object["version"] = .string(version)
        object["sessions"] = .int(Int64(sessions))
        object["started_at"] = .string(startedAt.rfc3339)
        object["last_heartbeat"] = .string(heartbeatAt.rfc3339)
        object["self"] = .bool(isSelf)
        return .object(object)
    }
}
