import Foundation
import SpliceControlPlane
import SpliceDataPlane
import Synchronization

/// This node's view of the cluster, refreshed by each heartbeat round (`Cluster`).
///
/// When the database is unreachable the view stays as of the last round that reached it
/// (peers keep their sessions and can still be asked over HTTP); this node itself is
/// always in it, with its session count of now.
public final class Membership: ClusterMembership {
    /// A node silent this long leaves the view.
    static let liveWindow: Duration = .seconds(5)

    private let gateway: Gateway
    private let local: Mutex<ClusterNode>
    private let live = Mutex<[ClusterNode]>([])
    /// The session count as of before a handoff froze the gateway: once the sessions are
    /// released to the successor, this process's registry is empty while they live on over
    /// there, and its last heartbeat must not tell the cluster the node has none.
    private let countBeforeHandoff = Atomic<Int>(0)

    init(gateway: Gateway, node: ClusterNode) {
        self.gateway = gateway
        self.local = Mutex(node)
    }

    public var localNode: ClusterNode {
        let sessions: Int
        if gateway.handoffUnderway {
            sessions = countBeforeHandoff.load(ordering: .relaxed)
        } else {
            sessions = gateway.sessionCount
            countBeforeHandoff.store(sessions, ordering: .relaxed)
        }
        return local.withLock { node in
            node.sessions = sessions
            return node
        }
    }

    public func liveNodes() -> [ClusterNode] {
        let me = localNode
        return live.withLock { $0 }.map { $0.name == me.name ? me.with(heartbeatAt: $0.heartbeatAt) : $0 }
            .sortedWithSelf(me)
    }

    /// Names the node once the admin server knows its address (port 0 binds late).
    func rename(_ name: String, adminURL: String) {
        local.withLock {
            $0.name = name
            $0.adminURL = adminURL
        }
    }

    /// Records a heartbeat round's result.
    func update(live nodes: [ClusterNode]) {
        if let me = nodes.first(where: { $0.name == localNode.name }) {
            local.withLock { $0.heartbeatAt = me.heartbeatAt }
        }
        live.withLock { $0 = nodes }
    }
}

extension ClusterNode {
    fileprivate func with(heartbeatAt date: Date) -> ClusterNode {
        var node = self
        node.heartbeatAt = date
        return node
    }
}

extension [ClusterNode] {
    /// By name, with `me` present even before its first heartbeat round.
    fileprivate func sortedWithSelf(_ me: ClusterNode) -> [ClusterNode] {
        (contains { $0.name == me.name } ? self : self + [me]).sorted { $0.name < $1.name }
    }
}
