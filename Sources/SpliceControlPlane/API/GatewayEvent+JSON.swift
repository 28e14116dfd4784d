import SpliceCore

extension GatewayEvent {
    /// The event as the stream sends it: its type, then the object it concerns; `node`
    /// names the cluster node it happened on (nil alone).
    func json(sequence: UInt64, node: String? = nil) -> JSON {
        var object = JSONObject()
        object["seq"] = .int(Int64(clamping: sequence))
        object["type"] = .string(name)
        if let node { object["node"] = .string(node) }
        switch self {
        case .listenerAdded(let listener):
            object["listener"] = listener.json
        case .listenerRemoved(let id):
            object["listener"] = ["id": .string("\(id)")]
        case .sessionOpened(let session):
            object["session"] = session.json(node: node)
        case .sessionClosed(let session, let reason):
            object["session"] = session.json(node: node)
            object["reason"] = .string(reason.rawValue)
        case .hopSpliced(let session, let hop):
            object["session"] = .string("\(session)")
            object["hop"] = hop.json
        case .hopRemoved(let session, let hop, let report):
            object["session"] = .string("\(session)")
            object["hop"] = report.json(hop: hop)
        case .hopFailed(let session, let hop, let reason, let policy):
            object["session"] = .string("\(session)")
            object["hop"] = ["id": .string("\(hop)")]
            object["reason"] = .string(reason)
            object["on_failure"] = .string(policy.rawValue)
        case .splitAdded(let session, let split), .splitDropped(let session, let split):
            object["session"] = .string("\(session)")
            object["split"] = split.json
        case .splitRemoved(let session, let split):
            object["session"] = .string("\(session)")
            object["split"] = ["id": .string("\(split)")]
        case .failedOver(let session, let split, let server, let reason):
            object["session"] = .string("\(session)")
            object["split"] = ["id": .string("\(split)")]
            object["server"] = .string(server)
            object["reason"] = .string(reason)
        case .handoff(let sessions, let listeners, let from):
            object["sessions"] = .int(Int64(sessions))
            object["listeners"] = .int(Int64(listeners))
            object["from_pid"] = .int(Int64(from))
        }
        return .object(object)
    }

    /// One Server-Sent Events frame: `id` for the sequence, the JSON on one `data` line.
    func sseFrame(sequence: UInt64, node: String? = nil) -> [UInt8] {
        Array("id: \(sequence)\ndata: ".utf8) + json(sequence: sequence, node: node).serializedBytes() + Array("\n\n".utf8)
    }
}
