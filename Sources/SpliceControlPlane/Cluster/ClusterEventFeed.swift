import NIOCore
import SpliceCore
import SplicePeerClient
import Synchronization

/// Feeds one event stream with the events of every other live node: a stream from each
/// peer's `/api/v1/events?scope=local`, whose frames are passed on (without the peer's own
/// `id:` numbering, which would clash with this node's). Once a second it follows the
/// membership: a node that joins is subscribed to, one that left is dropped, and a stream
/// that broke is opened again while its node lives.
///
/// The subscriber is told the feed is ready once every node live at the start has
/// answered (or failed, or `readyWithin` passed): from then on no peer event is missed,
/// which is what the stream's opening comment promises. Frames that arrive before are held
/// and passed on right after it.
final class ClusterEventFeed: Sendable {
    /// The longest the opening waits for the peers' streams.
    static let readyWithin: TimeAmount = .seconds(3)
    /// The most bytes held before the feed is ready.
    static let heldLimit = 1 << 20

    private struct State {
        var streams: [UInt64: PeerExchange] = [:]
        /// Nodes a round is subscribing to right now.
        var reserved: Set<UInt64> = []
        var stopped = false
        /// Peers whose first answer is awaited; nil once ready.
        var awaiting: Set<UInt64>? = []
        var onReady: (@Sendable () -> Void)?
        var held: [UInt8] = []
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
        self.credentials = access.relay.headers(of: request, extra: [])
        var query = request.queryItems.filter { $0.name == "access_token" }
        query.append(("scope", "local"))
        self.query = query
    }

    /// Subscribes to the peers now and follows the membership until `stop`; `onReady` runs
    /// once the peers live now are subscribed to (or have failed), before any peer frame is
    /// passed on.
    func start(onReady: @escaping @Sendable () -> Void) {
        let peers = access.peers
        state.withLock { state in
            state.awaiting = Set(peers.map(\.number))
            state.onReady = onReady
        }
        follow()
        checkReady()
        access.client.eventLoop.scheduleTask(in: Self.readyWithin) { [weak self] in self?.becomeReady() }
        let task = access.client.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) {
            [weak self] _ in self?.follow()
        }
        timer.withLock { $0 = task }
    }

    /// A peer's stream answered or failed: it is no longer awaited.
    private func answered(_ number: UInt64) {
        state.withLock { _ = $0.awaiting?.remove(number) }
        checkReady()
    }

    private func checkReady() {
        if state.withLock({ $0.awaiting?.isEmpty == true }) { becomeReady() }
    }

    /// Runs `onReady`, then passes on what was held; only the first call does anything.
    private func becomeReady() {
        let onReady = state.withLock { state -> (@Sendable () -> Void)? in
            guard state.awaiting != nil, !state.stopped else { return nil }
            defer { state.onReady = nil }
            return state.onReady
        }
        guard let onReady else { return }
        onReady()
        let held = state.withLock { state -> [UInt8] in
            state.awaiting = nil
            defer { state.held = [] }
            return state.held
        }
        if !held.isEmpty, !target.write(held) { target.finish() }
    }

    /// Passes a peer's frame on, or holds it until the feed is ready; false when the
    /// subscriber cannot take more (its stream is then ended).
    private func pass(_ frame: [UInt8]) -> Bool {
        let passNow = state.withLock { state -> Bool in
            guard state.awaiting != nil else { return true }
            state.held.append(contentsOf: frame)
            return state.held.count <= Self.heldLimit
        }
        guard passNow else { return false }
        return target.write(frame)
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
            // Reserved here, so two rounds that overlap never subscribe to one node twice.
            let missing = peers.filter { state.streams[$0.number] == nil && !state.reserved.contains($0.number) }
            state.reserved.formUnion(missing.map(\.number))
            return (Array(gone.values), missing)
        }
        for stream in gone { stream.cancel() }
        for node in missing { subscribe(to: node) }
    }

    private func subscribe(to node: ClusterNode) {
        let frames = Mutex<[UInt8]>([])
        let request = PeerClient.Request(method: "GET", baseURL: node.adminURL,
                                         target: "/api/v1/events" + PeerRelay.encodedQuery(query), headers: credentials)
        let number = node.number
        let stream = access.client.stream(request, timeout: nil, handlers: .init(
            head: { [weak self] _, _ in self?.answered(number) },
            body: { [weak self, target] piece in
                let complete = frames.withLock { pending -> [[UInt8]] in
                    pending.append(contentsOf: piece)
                    return Self.takeFrames(&pending)
                }
                for frame in complete where self?.pass(frame) == false {
                    target.finish()
                    return .stop
                }
                return .more
            },
            end: { [weak self] _ in self?.answered(number) }))
        let keep = state.withLock { state -> Bool in
            state.reserved.remove(node.number)
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
