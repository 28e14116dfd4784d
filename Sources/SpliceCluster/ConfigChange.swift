import SpliceControlPlane
import SpliceCore

/// What a `NOTIFY splicegate_config` says changed; every node applies it to its gateway.
/// The payload is a small JSON object: `{"change": "listener_removed", "id": 3,
/// "close_sessions": true, "origin": "node-a"}`.
enum ConfigChange: Sendable, Equatable {
    case listenerAdded(ListenerID)
    case listenerRemoved(ListenerID, closeSessions: Bool)
    case mediatorAdded(MediatorName)
    case mediatorRemoved(MediatorName)

    /// The channel every node listens on.
    static let channel = "splicegate_config"

    /// The payload, naming the node that made the change (which has applied it already).
    func payload(origin: String) -> String {
        var object = JSONObject()
        object["origin"] = .string(origin)
        switch self {
        case .listenerAdded(let id):
            object["change"] = "listener_added"
            object["id"] = .int(Int64(clamping: id.number))
        case .listenerRemoved(let id, let closeSessions):
            object["change"] = "listener_removed"
            object["id"] = .int(Int64(clamping: id.number))
            object["close_sessions"] = .bool(closeSessions)
        case .mediatorAdded(let name):
            object["change"] = "mediator_added"
            object["name"] = .string(name.text)
        case .mediatorRemoved(let name):
            object["change"] = "mediator_removed"
            object["name"] = .string(name.text)
        }
        return JSON.object(object).serialized()
    }

    /// Reads a payload: the change and its origin, or nil for one this build does not know
    /// (a newer node's), which a full reconciliation then covers.
    static func parse(_ payload: String) -> (change: ConfigChange, origin: String)? {
        guard let json = try? JSON.parse(payload), let origin = json["origin"]?.string else { return nil }
        let id = json["id"]?.int.flatMap { $0 > 0 ? ListenerID(number: UInt64($0)) : nil }
        let name = json["name"]?.string.map { MediatorName($0) }
        switch (json["change"]?.string, id, name) {
        case ("listener_added", let id?, _): return (.listenerAdded(id), origin)
        case ("listener_removed", let id?, _):
            return (.listenerRemoved(id, closeSessions: json["close_sessions"]?.bool ?? false), origin)
        case ("mediator_added", _, let name?): return (.mediatorAdded(name), origin)
        case ("mediator_removed", _, let name?): return (.mediatorRemoved(name), origin)
        default: return nil
        }
    }
}
