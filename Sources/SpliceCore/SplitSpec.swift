/// What a slow split recipient does to its session.
public enum SlowPolicy: String, Sendable, CaseIterable {
    /// Give the recipient a bounded buffer and detach it when it falls further behind.
    case drop
    /// Pace the session to the recipient, so the copy is lossless.
    case block
}

/// A request to copy one or both directions of a session to a recipient.
public struct SplitRequest: Sendable, Equatable {
    /// Where the copy goes.
    public var address: HostPort
    /// Which directions are copied (`both`: one connection per direction).
    public var directions: DirectionSelection
    /// What a slow recipient does.
    public var onSlow: SlowPolicy
    /// The recipient's buffer: how far it may fall behind (drop) or the session may run ahead (block).
    public var bufferBytes: Int
    /// Promote this split to server when the server fails (a replica only).
    public var failover: Bool

    /// The buffer used when a request names none.
    public static let defaultBufferBytes = 1 << 20

    /// A request from its parts.
    public init(address: HostPort, directions: DirectionSelection, onSlow: SlowPolicy = .drop,
                bufferBytes: Int = SplitRequest.defaultBufferBytes, failover: Bool = false) {
        self.address = address
        self.directions = directions
        self.onSlow = onSlow
        self.bufferBytes = bufferBytes
        self.failover = failover
    }

    /// Whether the split can be a replica: client-to-server and lossless. It also has to
    /// have seen the stream from offset 0, which only the session can tell.
    public var canBeReplica: Bool { directions == .clientToServer && onSlow == .block }
}

/// A view of one split of a session, safe to hand to any thread.
public struct SplitSnapshot: Sendable {
    /// Where a split is in its life.
    public enum State: String, Sendable {
        /// Receiving its copy.
        case active
        /// Detached: too slow, failed, or (a replica) too far ahead.
        case dropped
        /// The copied direction ended; EOF was passed on.
        case closed
    }

    /// Per-direction figures.
    public struct Leg: Sendable, Equatable {
        /// Offset in the delivered stream where the copy starts.
        public var fromOffset: UInt64
        /// Bytes handed to the recipient's connection.
        public var bytesSent: UInt64
        /// Bytes of the stream the recipient will not get because it was dropped.
        public var bytesDropped: UInt64
        /// Bytes the recipient sent back, read and discarded.
        public var bytesDiscarded: UInt64

        /// Figures from their parts.
        public init(fromOffset: UInt64, bytesSent: UInt64, bytesDropped: UInt64, bytesDiscarded: UInt64) {
            self.fromOffset = fromOffset
            self.bytesSent = bytesSent
            self.bytesDropped = bytesDropped
            self.bytesDiscarded = bytesDiscarded
        }
    }

    /// Split id (`x2`).
    public var id: SplitID
    /// The request it was made from.
    public var request: SplitRequest
    /// Life-cycle state.
    public var state: State
    /// Why it was dropped, if it was.
    public var reason: String?
    /// Figures per copied direction.
    public var legs: [Direction: Leg]

    /// A snapshot from its parts.
    public init(id: SplitID, request: SplitRequest, state: State, reason: String?, legs: [Direction: Leg]) {
        self.id = id
        self.request = request
        self.state = state
        self.reason = reason
        self.legs = legs
    }
}
