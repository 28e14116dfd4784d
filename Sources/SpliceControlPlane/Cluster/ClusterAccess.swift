import SpliceCore
import SplicePeerClient

/// What the admin API needs to answer for the whole cluster: who the live nodes are, and a
/// way to reach them.
public struct ClusterAccess: Sendable {
    /// The live nodes, this one included.
    public let membership: any ClusterMembership
    let client: PeerClient
    let relay: PeerRelay

    /// Access through `membership`, reaching peers with `client`.
    public init(membership: any ClusterMembership, client: PeerClient) {
        self.membership = membership
        self.client = client
        self.relay = PeerRelay(client: client, membership: membership)
    }

    /// The live nodes other than this one.
    var peers: [ClusterNode] {
        let local = membership.localNode
        return membership.liveNodes().filter { $0.number != local.number }
    }

    /// Whether `request` was passed here by another live node (and must be answered here).
    /// The mark names the sender; a mark naming no live peer is ignored, so a client that
    /// sends one cannot make this node answer for another's sessions.
    func isFromPeer(_ request: HTTPRequest) -> Bool {
        guard let sender = request.headers[PeerRelay.forwardedHeader] else { return false }
        return peers.contains { $0.name == sender }
    }

    /// The owner's answer for a request about one session (`/api/v1/sessions/{id}…`) that
    /// another node owns; nil when this node answers it (its own session, not a session
    /// path, or a request another node passed here).
    func forward(_ request: HTTPRequest) -> HTTPAnswer? {
        guard !isFromPeer(request) else { return nil }
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count >= 5, segments[0].isEmpty, segments[1] == "api", segments[2] == "v1",
              segments[3] == "sessions", let id = SessionID(String(segments[4])) else { return nil }
        let owner = ClusterNode.owner(of: id)
        guard owner != membership.localNode.number else { return nil }
        guard let node = membership.liveNodes().first(where: { $0.number == owner }) else {
            return .now(.problem(.notFound("no session \(id) (no live node of the cluster owns it)")))
        }
        return relay.relay(request, to: node)
    }
}
