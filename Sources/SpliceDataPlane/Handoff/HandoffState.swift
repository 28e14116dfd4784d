import Foundation
import SpliceCore

/// What a handoff moves to a successor process (issue 15, first slice), as values: the
/// protocol (SpliceHandoff) encodes them, the descriptors travel beside them.

/// One plain session: client and server connected, no hop, split or capture.
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

    public init(id: SessionID, listener: ListenerID, client: String, server: String, openedAt: Date,
                bytes: ByteCounts, clientPending: [UInt8], serverPending: [UInt8]) {
        self.id = id
        self.listener = listener
        self.client = client
        self.server = server
        self.openedAt = openedAt
        self.bytes = bytes
        self.clientPending = clientPending
        self.serverPending = serverPending
    }
}

/// A session and its two connections' descriptors.
public struct HandoffSession: Sendable {
    public var state: HandoffSessionState
    public var clientFD: Int32
    public var serverFD: Int32

    public init(state: HandoffSessionState, clientFD: Int32, serverFD: Int32) {
        self.state = state
        self.clientFD = clientFD
        self.serverFD = serverFD
    }
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
