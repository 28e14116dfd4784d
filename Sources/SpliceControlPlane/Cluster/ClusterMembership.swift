import Foundation

/// A gateway of the cluster as the others see it.
public struct ClusterNode: Sendable, Equatable {
    /// Unique in the cluster (`--node`).
    public var name: String
    /// ≥ 1, from the DB, new at each registration.
    public var number: UInt64
    /// Where the other nodes reach its admin API (`--advertise`).
    public var adminURL: String
    /// The splicegate version it runs.
    public var version: String
    /// When it registered.
    public var startedAt: Date
    /// Its last heartbeat, by the database's clock.
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
}

/// Who is in the cluster: this node and the others that heartbeat.
public protocol ClusterMembership: Sendable {
    /// This node.
    var localNode: ClusterNode { get }
    /// The live nodes, self included, as of the last heartbeat round; never blocks.
    func liveNodes() -> [ClusterNode]
}
