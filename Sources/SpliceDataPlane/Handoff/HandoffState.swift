import Foundation
import SpliceCore

/// What a handoff moves to a successor process (issue 15, first slice), as values: the
/// protocol (SpliceHandoff) encodes them, the descriptors travel beside them.

/// One session: client and server connected, its hops and its splits (protocol version 2),
/// no capture.
public struct HandoffSessionState: Sendable, Equatable {
    public var id: SessionID
    public var listener: ListenerID
    /// The client's address as listed (`127.0.0.1:50000`).
    public var client: String
    /// The server's address as listed.
    public var server: String
    public var openedAt: Date
    /// Bytes delivered (or queued for delivery) each way: the counters go on from these.
    public var bytes: ByteCounts
    /// Bytes read from the server and not yet written to the client.
    public var clientPending: [UInt8]
    /// Bytes read from the client and not yet written to the server.
    public var serverPending: [UInt8]
    /// Bytes read from the client and from the server (after a failover the server is the
    /// promoted replica, whose count differs from the stream's offsets).
    public var reads: ByteCounts
    /// Spliced hops in stack order, client side first.
    public var hops: [HandoffHopState]
    /// Splits in the order they were added, dropped ones included.
    public var splits: [HandoffSplitState]
    /// Each direction's link offsets in stream order (one more than the hops covering it),
    /// so that splice and removal offsets go on counting the same streams.
    public var linkOffsets: [Direction: [UInt64]]
    /// A half-closed session's EOFs, per socket in `HandoffSession.fds` order (client,
    /// server, hop legs, attached split legs): the peer sent EOF, and we shut its output.
    /// Empty for a session with none.
    public var inputEnded: [Bool] = []
    public var outputShut: [Bool] = []
    /// Directions whose EOF reached the receiving endpoint after every byte.
    public var finished: Set<Direction> = []

    public init(id: SessionID, listener: ListenerID, client: String, server: String, openedAt: Date,
                bytes: ByteCounts, clientPending: [UInt8], serverPending: [UInt8], reads: ByteCounts? = nil,
                hops: [HandoffHopState] = [], splits: [HandoffSplitState] = [],
                linkOffsets: [Direction: [UInt64]] = [:]) {
        self.id = id
        self.listener = listener
        self.client = client
        self.server = server
        self.openedAt = openedAt
        self.bytes = bytes
        self.clientPending = clientPending
        self.serverPending = serverPending
        self.reads = reads ?? bytes
        self.hops = hops
        self.splits = splits
        self.linkOffsets = linkOffsets
    }

    /// Every leg of every hop in the order their descriptors travel: hops in stack order,
    /// each hop's legs client-to-server first.
    public var legs: [HandoffHopLegState] { hops.flatMap(\.legs) }

    /// How many descriptors the session travels with (`HandoffSession.fds`).
    public var descriptorCount: Int {
        2 + legs.reduce(0) { $0 + $1.descriptorCount } + liveSplitLegs.count
    }

    /// The legs of splits still attached (dropped ones have no connection), in the order
    /// their descriptors travel after the hop legs': splits in order, client-to-server first.
    public var liveSplitLegs: [HandoffSplitLegState] {
        splits.filter { $0.state != .dropped }.flatMap(\.legs)
    }
}

/// One split, as it moves: the recipients' sockets of a split still attached travel beside
/// it; a dropped one moves as its figures only (it stays listed).
public struct HandoffSplitState: Sendable, Equatable {
    public var id: SplitID
    public var request: SplitRequest
    public var state: SplitSnapshot.State
    /// Why it was dropped, if it was.
    public var reason: String?
    /// A lossless client-to-server copy from offset 0: it can take over as the server.
    public var isReplica: Bool
    /// One leg per copied direction, client-to-server first.
    public var legs: [HandoffSplitLegState]

    public init(id: SplitID, request: SplitRequest, state: SplitSnapshot.State, reason: String?, isReplica: Bool,
                legs: [HandoffSplitLegState]) {
        self.id = id
        self.request = request
        self.state = state
        self.reason = reason
        self.isReplica = isReplica
        self.legs = legs
    }
}

/// One direction of a split: offsets, counters, the bytes queued for the recipient and, for
/// a replica, its output held for a failover.
public struct HandoffSplitLegState: Sendable, Equatable {
    public var direction: Direction
    public var fromOffset: UInt64
    /// Bytes queued to the recipient (queued ones included).
    public var sent: UInt64
    /// Bytes the recipient sent back.
    public var discarded: UInt64
    /// For a dropped split: bytes that were still queued when it was dropped.
    public var unsentAtDrop: UInt64
    /// Bytes written to the recipient that its socket had not taken yet.
    public var pending: [UInt8]
    /// A replica's output held for a failover, and where it starts in that output.
    public var backlog: [UInt8]
    public var backlogStart: UInt64

    public init(direction: Direction, fromOffset: UInt64, sent: UInt64, discarded: UInt64, unsentAtDrop: UInt64,
                pending: [UInt8], backlog: [UInt8], backlogStart: UInt64) {
        self.direction = direction
        self.fromOffset = fromOffset
        self.sent = sent
        self.discarded = discarded
        self.unsentAtDrop = unsentAtDrop
        self.pending = pending
        self.backlog = backlog
        self.backlogStart = backlogStart
    }
}

/// One spliced hop, as it moves (its legs' sockets or pipes travel beside it).
public struct HandoffHopState: Sendable, Equatable {
    public var id: HopID
    /// The registered mediator's name, nil for an ad-hoc address.
    public var mediator: MediatorName?
    /// The mediator's address, for display.
    public var target: String
    /// The splice request (direction, position, failure policy, drain timeout).
    public var request: HopRequest
    /// One leg per covered direction, client-to-server first.
    public var legs: [HandoffHopLegState]

    public init(id: HopID, mediator: MediatorName?, target: String, request: HopRequest, legs: [HandoffHopLegState]) {
        self.id = id
        self.mediator = mediator
        self.target = target
        self.request = request
        self.legs = legs
    }
}

/// One direction of a hop: its offsets, counters and the bytes queued for the mediator.
public struct HandoffHopLegState: Sendable, Equatable {
    public var direction: Direction
    public var splicedAt: UInt64
    /// Bytes written into the mediator (queued ones included).
    public var fed: UInt64
    /// Bytes read back from the mediator.
    public var emitted: UInt64
    /// Bytes written to the mediator that its socket had not taken yet.
    public var pending: [UInt8]
    /// An exec mediator's process id (its stdout, stdin and pidfd travel as the leg's three
    /// descriptors); nil for a TCP mediator (one descriptor, its socket).
    public var pid: Int32?

    public init(direction: Direction, splicedAt: UInt64, fed: UInt64, emitted: UInt64, pending: [UInt8],
                pid: Int32? = nil) {
        self.direction = direction
        self.splicedAt = splicedAt
        self.fed = fed
        self.emitted = emitted
        self.pending = pending
        self.pid = pid
    }

    /// How many descriptors the leg travels with.
    public var descriptorCount: Int { pid == nil ? 1 : 3 }
}

/// A session and its connections' descriptors: client, server, each hop leg's (in
/// `HandoffSessionState.legs` order: a TCP mediator's socket, or an exec mediator's stdout,
/// stdin and pidfd), then one per attached split leg (`liveSplitLegs`).
public struct HandoffSession: Sendable {
    public var state: HandoffSessionState
    public var clientFD: Int32
    public var serverFD: Int32
    /// Hop legs' descriptors, then split legs'.
    public var legFDs: [Int32]

    public init(state: HandoffSessionState, clientFD: Int32, serverFD: Int32, legFDs: [Int32] = []) {
        self.state = state
        self.clientFD = clientFD
        self.serverFD = serverFD
        self.legFDs = legFDs
    }

    /// Every descriptor, in the order they travel.
    public var fds: [Int32] { [clientFD, serverFD] + legFDs }
}

/// One listener: its id, spec (with the bound address), and figures.
public struct HandoffListenerState: Sendable, Equatable {
    public var id: ListenerID
    public var spec: ListenerSpec
    public var createdAt: Date
    public var totalSessions: UInt64
    public var upstreamFailures: UInt64
    public var rejectedSessions: UInt64

    public init(id: ListenerID, spec: ListenerSpec, createdAt: Date, totalSessions: UInt64,
                upstreamFailures: UInt64, rejectedSessions: UInt64) {
        self.id = id
        self.spec = spec
        self.createdAt = createdAt
        self.totalSessions = totalSessions
        self.upstreamFailures = upstreamFailures
        self.rejectedSessions = rejectedSessions
    }
}

/// A listener and its listening socket's descriptor.
public struct HandoffListener: Sendable {
    public var state: HandoffListenerState
    public var fd: Int32

    public init(state: HandoffListenerState, fd: Int32) {
        self.state = state
        self.fd = fd
    }
}

/// The id sources' next numbers, so that ids continue in the successor.
public struct HandoffCounters: Sendable, Equatable {
    public var nextSession: UInt64
    public var nextHop: UInt64
    public var nextSplit: UInt64
    public var nextListener: UInt64
    public var nextCapture: UInt64

    public init(nextSession: UInt64, nextHop: UInt64, nextSplit: UInt64, nextListener: UInt64, nextCapture: UInt64) {
        self.nextSession = nextSession
        self.nextHop = nextHop
        self.nextSplit = nextSplit
        self.nextListener = nextListener
        self.nextCapture = nextCapture
    }
}

/// Everything a frozen gateway hands over. The descriptors are the gateway's own: they
/// stay open in the predecessor until the successor has acknowledged (then `relinquish`
/// closes them) or failed (then `resume` serves them again); nothing else closes them
/// meanwhile (see `Session.freezeForHandoff`).
public struct HandoffExport: Sendable {
    public var mediators: [MediatorSpec]
    public var listeners: [HandoffListener]
    public var sessions: [HandoffSession]
    public var counters: HandoffCounters
}
