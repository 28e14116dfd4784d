/// How one node of the cluster holds a listener: bound on an address, or failed to bind.
public struct ListenerBind: Sendable, Equatable {
    /// Bound or not.
    public enum State: String, Sendable {
        case bound
        case failed
    }

    /// The node's name.
    public var node: String
    /// Its state.
    public var state: State
    /// The address it is bound on (what it tried, when it failed).
    public var listen: String
    /// Why binding failed; nil when bound.
    public var error: String?

    /// A bind state from its parts.
    public init(node: String, state: State, listen: String, error: String? = nil) {
        self.node = node
        self.state = state
        self.listen = listen
        self.error = error
    }

    /// The entry of a listener's `nodes` array in the API.
    var json: JSON {
        var object = JSONObject()
        object["node"] = .string(node)
        object["state"] = .string(state.rawValue)
        object["listen"] = .string(listen)
        if let error { object["error"] = .string(error) }
        return .object(object)
    }
}
