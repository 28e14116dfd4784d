import Foundation
import SpliceDataPlane
import Synchronization

/// The membership of a gateway that is not clustered: itself alone, always live.
public final class SingleNodeMembership: ClusterMembership {
    private let gateway: Gateway
    private let node: Mutex<ClusterNode>

    /// A node named `name`, reachable at `adminURL`, counting `gateway`'s sessions.
    public init(gateway: Gateway, name: String, adminURL: String, version: String) {
        self.gateway = gateway
        let now = Date()
        self.node = Mutex(ClusterNode(name: name, number: 1, adminURL: adminURL, version: version,
                                      startedAt: now, heartbeatAt: now, sessions: 0))
    }

    /// Renames the node once the admin server knows its address (port 0 binds late).
    public func rename(_ name: String, adminURL: String) {
        node.withLock {
            $0.name = name
            $0.adminURL = adminURL
        }
    }

    public var localNode: ClusterNode {
        let sessions = gateway.sessionCount
        return node.withLock { node in
            node.heartbeatAt = Date()
            node.sessions = sessions
            return node
        }
    }

    public func liveNodes() -> [ClusterNode] { [localNode] }
}
