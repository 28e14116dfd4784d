import NIOCore
import SpliceCore
import SplicePeerClient
import Synchronization

/// The other nodes' events, for every cluster-wide event stream this node serves.
///
/// One stream per live peer (`/api/v1/events?scope=local`), shared by all of this node's
/// subscribers and open only while there is one: however many consoles follow the events,
/// each peer serves this node one stream (a stream per subscriber per peer filled every
/// node's admin connection limit with a few hundred consoles). Frames are passed on
/// without the peer's `id:` numbering, which would clash with this node's. Once a second
/// the feed follows the membership: a node that joins is subscribed to, one that left is
/// dropped, a stream that broke is opened again. The streams authenticate with this node's
/// own admin token, which every node of a cluster shares.
///
/// A subscriber is ready once every peer live when it came has answered (or failed, or
/// `readyWithin` passed): from then on it misses no peer event, which is what its stream's
/// opening comment promises. Frames that arrive before are held for it and passed on right
/// after the opening.
final class ClusterEventFeed: Sendable {
    /// The longest a subscriber's opening waits for the peers' streams.
    static let readyWithin: TimeAmount = .seconds(3)
    /// The most bytes held for a subscriber that is not ready yet.
    static let heldLimit = 1 << 20

    /// A subscription, for `remove`.
    struct Token: Hashable, Sendable {
        fileprivate let value: UInt64
    }

    private struct Subscriber {
        let target: StreamSource
        /// Peers whose first answer it waits for; nil once it is ready.
        var awaiting: Set<UInt64>?
        var onReady: (@Sendable () -> Void)?
        var held: [UInt8] = []
    }

    private struct State {
        var subscribers: [UInt64: Subscriber] = [:]
        var nextToken: UInt64 = 1
        var streams: [UInt64: PeerExchange] = [:]
        /// Peers whose stream has answered (its head arrived) and not ended since.
        var answered: Set<UInt64> = []
        /// Nodes a round is subscribing to right now.
        var reserved: Set<UInt64> = []
        var timer: RepeatedTask?
    }

    private let access: ClusterAccess
    private let token: String?
    private let state = Mutex(State())

    /// A feed reaching the peers through `access`, authorised with `token`.
    init(access: ClusterAccess, token: String?) {
        self.access = access
        self.token = token
    }

    /// Adds a subscriber writing into `target`; `onReady` runs once the peers live now are
    /// subscribed to (or failed), before any peer frame is passed to it.
    func add(_ target: StreamSource, onReady: @escaping @Sendable () -> Void) -> Token {
        let peers = Set(access.peers.map(\.number))
        let (token, readyNow) = state.withLock { state -> (Token, Bool) in
            defer { state.nextToken += 1 }
            let awaiting = peers.subtracting(state.answered)
            state.subscribers[state.nextToken] = Subscriber(target: target, awaiting: awaiting, onReady: onReady)
            if state.timer == nil {
                state.timer = access.client.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) {
                    [weak self] _ in self?.follow()
                }
            }
            return (Token(value: state.nextToken), awaiting.isEmpty)
        }
        if readyNow {
            makeReady(token.value)
        } else {
            follow()
            access.client.eventLoop.scheduleTask(in: Self.readyWithin) { [weak self] in self?.makeReady(token.value) }
        }
        return token
    }

    /// Removes a subscriber; the peer streams close with the last one.
    func remove(_ token: Token) {
        let closing = state.withLock { state -> (streams: [PeerExchange], timer: RepeatedTask?)? in
            state.subscribers[token.value] = nil
            guard state.subscribers.isEmpty else { return nil }
            defer {
                state.streams = [:]
                state.answered = []
                state.timer = nil
            }
            return (Array(state.streams.values), state.timer)
        }
        guard let closing else { return }
        closing.timer?.cancel()
        for stream in closing.streams { stream.cancel() }
    }

    /// The peers' streams open now (for tests and metrics).
    var peerStreams: Int { state.withLock { $0.streams.count } }

    /// Runs a subscriber's `onReady`, then passes on what was held for it; only the first
    /// call for it does anything.
    private func makeReady(_ token: UInt64) {
        let onReady = state.withLock { state -> (@Sendable () -> Void)? in
            guard state.subscribers[token]?.awaiting != nil else { return nil }
            defer { state.subscribers[token]?.onReady = nil }
            return state.subscribers[token]?.onReady
        }
        guard let onReady else { return }
        onReady()
        // Frames that arrive meanwhile are still held, so the order is kept.
        state.withLock { state in
            guard var subscriber = state.subscribers[token] else { return }
            if !subscriber.held.isEmpty, !subscriber.target.write(subscriber.held) { subscriber.target.finish() }
            subscriber.held = []
            subscriber.awaiting = nil
            state.subscribers[token] = subscriber
        }
    }

    /// A peer's stream answered (`up`) or ended: subscribers stop waiting for it.
    private func peer(_ number: UInt64, up: Bool) {
        let ready = state.withLock { state -> [UInt64] in
            if up { state.answered.insert(number) } else { state.answered.remove(number) }
            var ready: [UInt64] = []
            for (token, var subscriber) in state.subscribers where subscriber.awaiting != nil {
                subscriber.awaiting?.remove(number)
                if subscriber.awaiting?.isEmpty == true { ready.append(token) }
                state.subscribers[token] = subscriber
            }
            return ready
        }
        for token in ready { makeReady(token) }
    }

    /// Passes a peer's frame to every subscriber, or holds it for one not ready yet; a
    /// subscriber that cannot take more has its stream ended.
    private func pass(_ frame: [UInt8]) {
        state.withLock { state in
            for (token, var subscriber) in state.subscribers {
                if subscriber.awaiting == nil {
                    if !subscriber.target.write(frame) { subscriber.target.finish() }
                } else if subscriber.held.count + frame.count <= Self.heldLimit {
                    subscriber.held.append(contentsOf: frame)
                    state.subscribers[token] = subscriber
                } else {
                    subscriber.target.finish()
                }
            }
        }
    }

    private func follow() {
        let peers = access.peers
        let live = Set(peers.map(\.number))
        let (gone, missing) = state.withLock { state -> ([PeerExchange], [ClusterNode]) in
            guard !state.subscribers.isEmpty else { return ([], []) }
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
        var headers: [(name: String, value: String)] = [(PeerRelay.forwardedHeader, access.membership.localNode.name)]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        let request = PeerClient.Request(method: "GET", baseURL: node.adminURL,
                                         target: "/api/v1/events?scope=local", headers: headers)
        let number = node.number
        let stream = access.client.stream(request, timeout: nil, handlers: .init(
            head: { [weak self] status, _ in self?.peer(number, up: status == 200) },
            body: { [weak self] piece in
                let complete = frames.withLock { pending -> [[UInt8]] in
                    pending.append(contentsOf: piece)
                    return Self.takeFrames(&pending)
                }
                for frame in complete { self?.pass(frame) }
                return .more
            },
            end: { [weak self] _ in self?.peer(number, up: false) }))
        let keep = state.withLock { state -> Bool in
            state.reserved.remove(number)
            guard !state.subscribers.isEmpty else { return false }
            state.streams[number] = stream
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
