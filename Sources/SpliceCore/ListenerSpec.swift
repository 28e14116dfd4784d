/// What an operator asks for when creating a listener (API body or config entry).
public struct ListenerSpec: Sendable, Equatable {
    /// Optional operator-chosen label.
    public var name: String?
    /// Where to accept clients; port 0 binds an ephemeral port.
    public var listen: HostPort
    /// The server every accepted client is relayed to.
    public var upstream: HostPort
    /// How long dialing the upstream may take before the client is closed.
    public var connectTimeoutMs: Int
    /// Mediators spliced into every new session at offset 0, in stack order.
    public var mediators: [HopRequest]
    /// Recipients every new session is copied to from offset 0 (a replica for each, say).
    public var splits: [SplitRequest]
    /// Most live sessions at once; clients beyond it are closed at once. Nil: no limit.
    public var maxSessions: Int?
    /// A session with no byte moving in either direction for this long is closed (`idle`).
    /// Nil: never.
    public var idleTimeoutMs: Int?

    /// The connect timeout used when a spec names none.
    public static let defaultConnectTimeoutMs = 5_000

    /// A spec from its parts.
    public init(name: String? = nil, listen: HostPort, upstream: HostPort,
                connectTimeoutMs: Int = ListenerSpec.defaultConnectTimeoutMs, mediators: [HopRequest] = [],
                splits: [SplitRequest] = [], maxSessions: Int? = nil, idleTimeoutMs: Int? = nil) {
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.connectTimeoutMs = connectTimeoutMs
        self.mediators = mediators
        self.splits = splits
        self.maxSessions = maxSessions
        self.idleTimeoutMs = idleTimeoutMs
    }
}
