import Foundation
import SpliceCore

/// What a handoff moves to a successor process (issue 15, first slice), as values: the
/// protocol (SpliceHandoff) encodes them, the descriptors travel beside them.

/// One session: client and server connected, its TCP-mediator hops (protocol version 2),
/// no split or capture.
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
    /// Spliced hops in stack order, client side first.
    public var hops: [HandoffHopState]
    /// Each direction's link offsets in stream order (one more than the hops covering it),
    /// so that splice and removal offsets go on counting the same streams.
    public var linkOffsets: [Direction: [UInt64]]

    public init(id: SessionID, listener: ListenerID, client: String, server: String, openedAt: Date,
                bytes: ByteCounts, clientPending: [UInt8], serverPending: [UInt8], hops: [HandoffHopState] = [],
                linkOffsets: [Direction: [UInt64]] = [:]) {
        self.id = id
        self.listener = listener
        self.client = client
        self.server = server
        self.openedAt = openedAt
        self.bytes = bytes
        self.clientPending = clientPending
        self.serverPending = serverPending
        self.hops = hops
        self.linkOffsets = linkOffsets
    }

    /// Every leg of every hop in the order their descriptors travel: hops in stack order,
    /// each hop's legs client-to-server first.
    public var legs: [HandoffHopLegState] { hops.flatMap(\.legs) }
}

/// One spliced hop of a TCP mediator, as it moves (its legs' sockets travel beside it).
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

    public init(direction: Direction, splicedAt: UInt64, fed: UInt64, emitted: UInt64, pending: [UInt8]) {
        self.direction = direction
        self.splicedAt = splicedAt
        self.fed = fed
        self.emitted = emitted
        self.pending = pending
    }
}

/// A session and its connections' descriptors: client, server, then one per hop leg
/// (in `HandoffSessionState.legs` order).
public struct HandoffSession: Sendable {
    public var state: HandoffSessionState
    public var clientFD: Int32
    public var serverFD: Int32
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

/// Everything a frozen gateway hands over. The descriptors stay open in the predecessor
/// until the successor has acknowledged (then `relinquish`) or failed (then `resume`).
public struct HandoffExport: Sendable {
    public var mediators: [MediatorSpec]
    public var listeners: [HandoffListener]
    public var sessions: [HandoffSession]
    public var counters: HandoffCounters
}
