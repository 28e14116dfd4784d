import Foundation

/// Bytes delivered to each direction's endpoint.
public struct ByteCounts: Sendable, Equatable {
    /// Bytes delivered to the server.
    public var clientToServer: UInt64
    /// Bytes delivered to the client.
    public var serverToClient: UInt64

    /// Counts from their parts.
    public init(clientToServer: UInt64 = 0, serverToClient: UInt64 = 0) {
        self.clientToServer = clientToServer
        self.serverToClient = serverToClient
    }
}

/// Where a session is in its life.
public enum SessionState: String, Sendable {
    /// Accepted; the upstream is being dialed.
    case connecting
    /// Relaying.
    case open
    /// At least one direction has reached EOF; the other still relays.
    case halfClosed = "half_closed"
    /// Being torn down.
    case closing
}

/// Why a session ended, as reported in events, logs and metrics.
public enum CloseReason: String, Sendable, CaseIterable {
    /// Both directions reached EOF.
    case completed
    /// The client reset or failed.
    case clientError = "client_error"
    /// The server reset or failed.
    case serverError = "server_error"
    /// The upstream could not be dialed.
    case upstreamUnreachable = "upstream_unreachable"
    /// Closed over the admin API.
    case killed
    /// Its listener was removed with `close_sessions`.
    case listenerClosed = "listener_closed"
    /// The gateway shut down.
    case shutdown
    /// A mediator failed and its policy was `close_session`.
    case mediatorFailed = "mediator_failed"
    /// No byte moved in either direction for the listener's `idle_timeout_ms`.
    case idle

    /// Whether the session ended because a side failed mid-stream: its endpoints are then
    /// closed with a reset rather than a FIN.
    public var cutsTheStream: Bool {
        switch self {
        case .clientError, .serverError, .mediatorFailed: true
        case .completed, .upstreamUnreachable, .killed, .listenerClosed, .shutdown, .idle: false
        }
    }
}

/// A point-in-time view of one session, safe to hand to any thread.
public struct SessionSnapshot: Sendable {
    /// Session id (`s17`).
    public var id: SessionID
    /// The listener that accepted it.
    public var listener: ListenerID
    /// The client's address.
    public var client: String
    /// The server's address (the upstream, or the replica after failover).
    public var server: String
    /// Life-cycle state.
    public var state: SessionState
    /// When the client was accepted.
    public var openedAt: Date
    /// Bytes delivered per direction.
    public var bytes: ByteCounts
    /// Spliced mediators in stack order (client side first).
    public var hops: [HopSnapshot]
    /// Recipients of copies, in the order they were added.
    public var splits: [SplitSnapshot]
    /// Live captures recording it (of the session or of its listener).
    public var captures: [CaptureSnapshot]

    /// A snapshot from its parts.
    public init(id: SessionID, listener: ListenerID, client: String, server: String,
                state: SessionState, openedAt: Date, bytes: ByteCounts, hops: [HopSnapshot] = [],
                splits: [SplitSnapshot] = [], captures: [CaptureSnapshot] = []) {
        self.id = id
        self.listener = listener
        self.client = client
        self.server = server
        self.state = state
        self.openedAt = openedAt
        self.bytes = bytes
        self.hops = hops
        self.splits = splits
        self.captures = captures
    }
}

/// A point-in-time view of one listener.
public struct ListenerSnapshot: Sendable {
    /// Listener id (`l3`).
    public var id: ListenerID
    /// The spec it was created from, with `listen` holding the bound address.
    public var spec: ListenerSpec
    /// When it started accepting.
    public var createdAt: Date
    /// Sessions currently live.
    public var activeSessions: Int
    /// Sessions accepted since it started.
    public var totalSessions: UInt64
    /// Upstream dials that failed (refused or timed out).
    public var upstreamFailures: UInt64
    /// Clients closed at once because a session limit (the listener's or the gateway's) was reached.
    public var rejectedSessions: UInt64

    /// A snapshot from its parts.
    public init(id: ListenerID, spec: ListenerSpec, createdAt: Date, activeSessions: Int,
                totalSessions: UInt64, upstreamFailures: UInt64, rejectedSessions: UInt64 = 0) {
        self.id = id
        self.spec = spec
        self.createdAt = createdAt
        self.activeSessions = activeSessions
        self.totalSessions = totalSessions
        self.upstreamFailures = upstreamFailures
        self.rejectedSessions = rejectedSessions
    }
}
