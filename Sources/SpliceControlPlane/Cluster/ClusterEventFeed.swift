import NIOCore
import SpliceCore
import Synchronization

/// Feeds one event stream with the events of every other live node: a stream from each
/// peer's `/api/v1/events?scope=local`, whose frames are passed on (without the peer's own
/// `id:` numbering, which would clash with this node's). Once a second it follows the
/// membership: a node that joins is subscribed to, one that left is dropped, and a stream
/// that broke is opened again while its node lives.
final class ClusterEventFeed: Sendable {
    private struct State {
        var streams: [UInt64: PeerExchange] = [:]
        var stopped = false
    }

    private let access: ClusterAccess
    private let target: StreamSource
    private let credentials: [(name: String, value: String)]
    private let query: [(name: String, value: String)]
    private let state = Mutex(State())
    private let timer = Mutex<RepeatedTask?>(nil)

    /// A feed into `target`, authorised as `request` was.
    init(access: ClusterAccess, request: HTTPRequest, into target: StreamSource) {
        self.access = access
        self.target = target
        var credentials: [(name: String, value: String)] = [(PeerRelay.forwardedHeader, access.membership.localNode.name)]
        if let authorization = request.headers["Authorization"] { credentials.append(("Authorization", authorization)) }
        self.credentials = credentials
        var query = request.queryItems.filter { $0.name == "access_token" }
        query.append(("scope", "local"))
        self.query = query
    }

    /// Subscribes to the peers now and follows the membership until `stop`.
    func start() {
        follow()
        let task = access.client.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) {
            [weak self] _ in self?.follow()
        }
        timer.withLock { $0 = task }
    }

    /// Ends every peer stream; called when the subscriber leaves.
    func stop() {
        let streams = state.withLock { state -> [PeerExchange] in
            state.stopped = true
            defer { state.streams = [:] }
            return Array(state.streams.values)
        }
        timer.withLock { $0?.cancel(); $0 = nil }
        for stream in streams { stream.cancel() }
    }

    private func follow() {
        let peers = access.peers
        let live = Set(peers.map(\.number))
        let (gone, missing) = state.withLock { state -> ([PeerExchange], [ClusterNode]) in
            guard !state.stopped else { return ([], []) }
            let gone = state.streams.filter { !live.contains($0.key) || $0.value.isFinished }
            for number in gone.keys { state.streams[number] = nil }
            return (Array(gone.values), peers.filter { state.streams[$0.number] == nil })
        }
        for stream in gone { stream.cancel() }
        for node in missing { subscribe(to: node) }
    }

    private func subscribe(to node: ClusterNode) {
        let frames = Mutex<[UInt8]>([])
        let request = PeerClient.Request(method: .GET, baseURL: node.adminURL,
                                         target: "/api/v1/events" + PeerRelay.encodedQuery(query), headers: credentials)
        let stream = access.client.stream(request, timeout: nil, handlers: .init(
            head: { _, _ in },
            body: { [target] piece in
                let complete = frames.withLock { pending -> [[UInt8]] in
                    pending.append(contentsOf: piece)
                    return Self.takeFrames(&pending)
                }
                for frame in complete where !target.write(frame) {
                    target.finish()
                    return .stop
                }
                return .more
            },
            end: { _ in }))
        let keep = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.streams[node.number] = stream
            return true
        }
        if !keep { stream.cancel() }
    }

    /// Removes the complete frames from `pending` and returns each as `data:` lines only.
    static func takeFrames(_ pending: inout [UInt8]) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var start = 0
        var index = 0
        while index + 1 < pending.count {
            if pending[index] == UInt8(ascii: "\n"), pending[index + 1] == UInt8(ascii: "\n") {
                let frame = pending[start..<index]
                var data: [UInt8] = []
                for line in frame.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("data:".utf8)) {
                    data.append(contentsOf: line)
                    data.append(UInt8(ascii: "\n"))
                }
                if !data.isEmpty {
                    data.append(UInt8(ascii: "\n"))
                    frames.append(data)
                }
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        pending.removeFirst(start)
        return frames
    }
}
