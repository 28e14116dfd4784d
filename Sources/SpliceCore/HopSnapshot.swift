/// A view of one hop of a session, safe to hand to any thread.
public struct HopSnapshot: Sendable {
    /// Where a hop is in its life.
    public enum State: String, Sendable {
        /// Spliced; bytes pass through it.
        case active
        /// Being removed: no longer fed, its remaining output still forwarded.
        case draining
    }

    /// Per-direction figures of one hop.
    public struct Leg: Sendable, Equatable {
        /// Offset in the stream entering the hop where it took effect.
        public var splicedAt: UInt64
        /// Bytes written into the mediator.
        public var bytesIn: UInt64
        /// Bytes read back from the mediator.
        public var bytesOut: UInt64

        /// Figures from their parts.
        public init(splicedAt: UInt64, bytesIn: UInt64, bytesOut: UInt64) {
            self.splicedAt = splicedAt
            self.bytesIn = bytesIn
            self.bytesOut = bytesOut
        }
    }

    /// Hop id (`h3`).
    public var id: HopID
    /// The registered mediator's name, or nil for an ad-hoc address.
    public var mediator: MediatorName?
    /// The mediator's address or command, for display.
    public var target: String
    /// Directions it covers.
    public var directions: DirectionSelection
    /// Its layer in the session's stack, counted from the client side.
    public var position: Int
    /// Life-cycle state.
    public var state: State
    /// Failure policy.
    public var onFailure: FailurePolicy
    /// Drain timeout.
    public var drainTimeoutMs: Int
    /// Figures per covered direction.
    public var legs: [Direction: Leg]

    /// A snapshot from its parts.
    public init(id: HopID, mediator: MediatorName?, target: String, directions: DirectionSelection, position: Int,
                state: State, onFailure: FailurePolicy, drainTimeoutMs: Int, legs: [Direction: Leg]) {
        self.id = id
        self.mediator = mediator
        self.target = target
        self.directions = directions
        self.position = position
        self.state = state
        self.onFailure = onFailure
        self.drainTimeoutMs = drainTimeoutMs
        self.legs = legs
    }
}

/// What a completed removal reports.
public struct RemovalReport: Sendable, Equatable {
    /// Per direction: the offset in the stream entering the hop where feeding stopped.
    public var removedAt: [Direction: UInt64]
    /// Per direction: bytes the mediator emitted after it stopped being fed.
    public var drained: [Direction: UInt64]

    /// A report from its parts.
    public init(removedAt: [Direction: UInt64], drained: [Direction: UInt64]) {
        self.removedAt = removedAt
        self.drained = drained
    }
}
