/// A registered mediator: a transform service the gateway can splice into sessions.
public struct MediatorSpec: Sendable, Equatable {
    /// How the gateway reaches the mediator.
    public enum Kind: Sendable, Equatable {
        /// A TCP service: one connection per hop and direction.
        case tcp(HostPort)
        /// A local command (no shell): one process per hop and direction, stdin in, stdout out.
        case exec([String])
    }

    /// Registry key, unique.
    public var name: MediatorName
    /// Transport.
    public var kind: Kind
    /// Send a PROXY protocol v2 header first on each connection (`tcp` only).
    public var proxyProtocol: Bool

    /// A spec from its parts.
    public init(name: MediatorName, kind: Kind, proxyProtocol: Bool = false) {
        self.name = name
        self.kind = kind
        self.proxyProtocol = proxyProtocol
    }
}

/// What happens to a session when one of its mediators fails.
public enum FailurePolicy: String, Sendable, CaseIterable {
    /// End the session (fail-closed); the default.
    case closeSession = "close_session"
    /// Drop the hop and relay directly; bytes inside the mediator are lost.
    case bypass
}

/// A request to splice a mediator into a session (API body or listener template).
public struct HopRequest: Sendable, Equatable {
    /// A registered mediator by name, or an ad-hoc TCP address.
    public enum Target: Sendable, Equatable {
        case registered(MediatorName)
        case address(HostPort)
    }

    /// Which mediator.
    public var target: Target
    /// Which directions pass it.
    public var directions: DirectionSelection
    /// Stack position counted from the client side; nil appends next to the server.
    public var position: Int?
    /// What a failure of the mediator does.
    public var onFailure: FailurePolicy
    /// How long a removal may wait for the mediator to flush.
    public var drainTimeoutMs: Int

    /// The drain timeout used when a request names none.
    public static let defaultDrainTimeoutMs = 5_000

    /// A request from its parts.
    public init(target: Target, directions: DirectionSelection, position: Int? = nil,
                onFailure: FailurePolicy = .closeSession, drainTimeoutMs: Int = HopRequest.defaultDrainTimeoutMs) {
        self.target = target
        self.directions = directions
        self.position = position
        self.onFailure = onFailure
        self.drainTimeoutMs = drainTimeoutMs
    }
}

extension MediatorSpec {
    /// The address or command line, for display.
    public var target: String {
        switch kind {
        case .tcp(let address): "\(address)"
        case .exec(let argv): argv.joined(separator: " ")
        }
    }
}

/// A registered mediator and how many hops use it now.
public struct MediatorSnapshot: Sendable {
    /// The registration.
    public var spec: MediatorSpec
    /// Hops currently spliced with it.
    public var inUse: Int

    /// A snapshot from its parts.
    public init(spec: MediatorSpec, inUse: Int) {
        self.spec = spec
        self.inUse = inUse
    }
}
