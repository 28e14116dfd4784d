import Dispatch
import SpliceCore
import SpliceDataPlane
import Synchronization

/// `GET /api/v1/events`: the gateway's events as Server-Sent Events.
///
/// Each client gets a bounded buffer: one that cannot keep up (more than a MiB behind) has
/// its stream ended rather than slowing the event loops that publish. A comment every few
/// seconds keeps proxies from timing the stream out and finds clients that went away.
struct EventsHandler: Sendable {
    let gateway: Gateway
    let heartbeat: Heartbeat
    /// The other nodes' events, when this gateway is one of a cluster: they join the stream.
    var feed: ClusterEventFeed?
    /// This node's name in events, when it is one of a cluster.
    var cluster: ClusterAccess?
    /// Each event's frame, built once for all the streams.
    private let frames = EventFrames()

    /// The comment an event stream ends with when the gateway hands off to a new process
    /// (not an event: `gateway.handoff` is the successor's, on the stream the client opens
    /// again, which `retry` tells it to do).
    static let handoffNote = Array(": handing off to a new process; reconnect\n\n".utf8)

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/events") { request, _ in
            try request.allowQuery(["access_token", "scope"])
            let localOnly = try request.localScope()
            let source = StreamSource(maxBufferedBytes: 1 << 20, handoffNote: Self.handoffNote)
            let node = cluster?.membership.localNode.name
            let subscription = Subscription()
            // Subscribed here first, then the opening comment: from the comment on, the
            // client misses no event (in a cluster, none of the peers' either).
            let open: @Sendable () -> Void = { [events = gateway.events, frames] in
                subscription.open(events) { sequence, event in
                    if !source.write(frames.frame(sequence, event, node: node)) { source.finish() }
                }
                source.write(Array(": splicegate events\nretry: 2000\n\n".utf8))
            }
            let feed = localOnly || cluster?.isFromPeer(request) == true ? nil : self.feed
            heartbeat.add(source)
            let token = Mutex<ClusterEventFeed.Token?>(nil)
            source.onRelease { [events = gateway.events] in
                subscription.close(events)
                heartbeat.remove(source)
                if let feed, let token = token.withLock({ $0 }) { feed.remove(token) }
            }
            if let feed {
                let added = feed.add(source, onReady: open)
                token.withLock { $0 = added }
                // Released before the token was kept: nobody else removes it.
                if source.isReleased { feed.remove(added) }
            } else {
                open()
            }
            var response = HTTPResponse.stream(source)
            response.headers.set("X-Accel-Buffering", "no")
            return response
        }
    }
}

/// The frame of the event being published, built by its first subscriber and reused by the
/// rest: the hub hands one event to every subscriber in turn, under its lock, on the relay
/// loop that published it, so one encoding per event is all the loop pays however many
/// consoles (and, in a cluster, other nodes) follow the stream.
private final class EventFrames: Sendable {
    private let last = Mutex<(sequence: UInt64, node: String?, frame: [UInt8])?>(nil)

    func frame(_ sequence: UInt64, _ event: GatewayEvent, node: String?) -> [UInt8] {
        if let cached = last.withLock({ $0 }), cached.sequence == sequence, cached.node == node {
            return cached.frame
        }
        let frame = event.sseFrame(sequence: sequence, node: node)
        last.withLock { $0 = (sequence, node, frame) }
        return frame
    }
}

/// One stream's subscription to the gateway's events, which may open after the client has
/// already gone (a cluster stream opens once the peers answer): then it never opens.
private final class Subscription: Sendable {
    private let state = Mutex<(token: EventHub.Token?, closed: Bool)>((nil, false))

    func open(_ events: EventHub, _ deliver: @escaping @Sendable (UInt64, GatewayEvent) -> Void) {
        state.withLock { state in
            guard !state.closed, state.token == nil else { return }
            state.token = events.subscribe(deliver)
        }
    }

    func close(_ events: EventHub) {
        let token = state.withLock { state -> EventHub.Token? in
            state.closed = true
            defer { state.token = nil }
            return state.token
        }
        if let token { events.cancel(token) }
    }
}

/// Writes a keep-alive comment to every open event stream at a fixed interval.
final class Heartbeat: Sendable {
    /// The open streams, shared with the timer's handler.
    private final class Streams: Sendable {
        let table = Mutex<[ObjectIdentifier: StreamSource]>([:])
    }

    private let streams = Streams()
    // Only touched in init and deinit; the Mutex makes the non-Sendable timer storable.
    private let timer: Mutex<DispatchSourceTimer?>

    init(every seconds: Int = 10) {
        let source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .now() + .seconds(seconds), repeating: .seconds(seconds))
        source.setEventHandler { [streams] in
            for stream in streams.table.withLock({ Array($0.values) }) {
                stream.write(Array(": keep-alive\n\n".utf8))
            }
        }
        source.resume()
        timer = Mutex(source)
    }

    deinit { timer.withLock { $0?.cancel() } }

    func add(_ source: StreamSource) {
        streams.table.withLock { $0[ObjectIdentifier(source)] = source }
    }

    func remove(_ source: StreamSource) {
        _ = streams.table.withLock { $0.removeValue(forKey: ObjectIdentifier(source)) }
    }
}
