import Foundation
import SpliceCore

/// A gateway of the cluster as the others see it.
public struct ClusterNode: Sendable, Equatable {
    /// `--node`: unique among live nodes.
    public var name: String
    /// Issued by the cluster store, new at each registration (never reused); its sessions'
    /// ids start at `sessionNumberBase`.
    public var number: UInt64
    /// `--advertise`: where the other nodes reach this node's admin API (`http://host:port`).
    public var adminURL: String
    /// The gateway's version.
    public var version: String
    /// When the node registered.
    public var startedAt: Date
    /// Its last heartbeat, by the store's clock.
    public var heartbeatAt: Date
    /// Its live sessions at that heartbeat.
    public var sessions: Int

    /// A node from its parts.
    public init(name: String, number: UInt64, adminURL: String, version: String, startedAt: Date,
                heartbeatAt: Date, sessions: Int) {
        self.name = name
        self.number = number
        self.adminURL = adminURL
        self.version = version
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.sessions = sessions
    }

    /// Session numbers a node may issue: node `n` issues `n × 10¹²` + 1 onwards, so an id
    /// names its owner (`s3000000000017` is node 3's 17th session) and a list ordered by id
    /// is ordered by node, which keeps merged cursor paging exact.
    public static let sessionNumberStride: UInt64 = 1_000_000_000_000

    /// The number of this node's first session.
    public var firstSessionNumber: UInt64 { Self.firstSessionNumber(ofNode: number) }

    /// The number of the first session of node `number`.
    public static func firstSessionNumber(ofNode number: UInt64) -> UInt64 {
        number * sessionNumberStride + 1
    }

    /// The number of the node that issued `session`.
    public static func owner(of session: SessionID) -> UInt64 {
        session.number / sessionNumberStride
    }
}

/// The live nodes of the cluster, as the membership (heartbeats in the store) sees them.
public protocol ClusterMembership: Sendable {
    /// This node.
    var localNode: ClusterNode { get }
    /// The live nodes, self included, as of the last heartbeat round; never blocks.
    func liveNodes() -> [ClusterNode]
}
