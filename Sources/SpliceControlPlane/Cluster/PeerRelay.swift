import NIOCore
import SpliceCore
import SplicePeerClient
import Synchronization

/// Passes a request on to another node and its answer back: a whole body as one response,
/// a streamed one (events, capture) as a stream fed as the peer sends it, at the pace this
/// node's client reads it.
struct PeerRelay: Sendable {
    /// Marks a request one node passed to another: the receiver answers it itself, so a
    /// stale view can never bounce a request between nodes.
    static let forwardedHeader = "X-Splicegate-Forwarded"

    let client: PeerClient
    /// Who this node is (its name is sent in `forwardedHeader`).
    let membership: any ClusterMembership

    /// The peer's answer to `request`, or 502 when it cannot be reached.
    func relay(_ request: HTTPRequest, to node: ClusterNode, query: [(name: String, value: String)]? = nil) -> HTTPAnswer {
        let pending = PendingResponse()
        let peerRequest = PeerClient.Request(
            method: request.method.rawValue, baseURL: node.adminURL,
            target: request.path + Self.encodedQuery(query ?? request.queryItems),
            headers: headers(of: request), body: request.body)
        let mode = Mutex(Mode.waiting)
        let exchange = client.stream(peerRequest, timeout: Self.timeout(for: request), handlers: .init(
            head: { status, headers in
                var response = HTTPResponse(status: status)
                for (name, value) in headers where Self.passedBack.contains(name.lowercased()) {
                    response.headers.set(name, value)
                }
                if headers.contains(where: { $0.name.lowercased() == "content-length" }) {
                    mode.withLock { $0 = .collecting(response, []) }
                } else {
                    // Chunked: a stream, answered now and fed as the peer sends.
                    let stream = StreamSource(maxBufferedBytes: 8 << 20, blockSize: 64 * 1024)
                    response.body = .stream(stream)
                    mode.withLock { $0 = .streaming(stream) }
                    pending.complete(response)
                }
            },
            body: { piece in
                let stream = mode.withLock { mode -> StreamSource? in
                    switch mode {
                    case .streaming(let stream):
                        return stream
                    case .collecting(let response, var body):
                        mode = .waiting
                        body.append(contentsOf: piece)
                        mode = .collecting(response, body)
                        return nil
                    case .waiting:
                        return nil
                    }
                }
                guard let stream else { return .more }
                if stream.write(piece) { return .more }
                // Full: keep the piece (nothing is lost) and slow the peer down through TCP.
                guard stream.writeRegardless(piece) else { return .stop }
                return .waitUntil { stream.isReleased || stream.room >= stream.maxBufferedBytes / 2 }
            },
            end: { failure in
                switch mode.withLock({ $0 }) {
                case .streaming(let stream):
                    stream.finish()
                case .collecting(var response, let body) where failure == nil:
                    response.body = .bytes(body)
                    pending.complete(response)
                default:
                    let reason = failure?.description ?? "no answer"
                    // A node that stopped answering (paused, cut off) may still read the
                    // request once it is back, and carry it out: the caller must not take
                    // the 502 for "not done".
                    let outcome = request.method == .GET ? ""
                        : "; the request may have reached it, and may still be carried out if the node comes back: read the session back"
                    pending.complete(.problem(.badGateway(
                        "node \(node.name) (\(node.adminURL)) did not answer: \(reason)\(outcome)")))
                }
            }))
        pending.onRelease { [exchange] in exchange.cancel() }
        watch(exchange, of: node)
        return .later(pending)
    }

    /// How long a peer may take to answer `request` in full: a capture streams for as long
    /// as its session lives (nil); removing a hop drains for at most its drain timeout
    /// (600 s); anything else is answered at once, so a peer that heartbeats but does not
    /// answer holds the caller's connection for seconds, not minutes.
    static func timeout(for request: HTTPRequest) -> TimeAmount? {
        if request.path.hasSuffix("/capture") { return nil }
        let segments = request.path.split(separator: "/")
        if request.method == .DELETE, segments.count == 6, segments[4] == "mediators" { return .seconds(630) }
        return .seconds(30)
    }

    /// Ends an exchange with `node` once the node leaves the view: a node stopped or cut
    /// off answers neither a request in flight nor a stream, and its callers get 502 (or
    /// the end of their stream) within the view's 5 s instead of at the timeout.
    private func watch(_ exchange: PeerExchange, of node: ClusterNode) {
        let task = client.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) {
            [membership] task in
            if exchange.isFinished {
                task.cancel()
            } else if !membership.liveNodes().contains(where: { $0.number == node.number }) {
                exchange.fail("node \(node.name) left the cluster's view")
                task.cancel()
            }
        }
        exchange.onFinish { task.cancel() }
    }

    /// How far a peer's answer has come.
    private enum Mode {
        case waiting
        case collecting(HTTPResponse, [UInt8])
        case streaming(StreamSource)
    }

    /// The header fields a peer gets: this node's mark and the caller's credentials, plus
    /// the caller's `extra` fields.
    func headers(of request: HTTPRequest, extra: [String] = ["Content-Type", "Accept"]) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [(Self.forwardedHeader, membership.localNode.name)]
        for name in ["Authorization"] + extra {
            if let value = request.headers[name] { headers.append((name, value)) }
        }
        return headers
    }

    /// The response header fields passed back from a peer.
    private static let passedBack: Set<String> = ["content-type", "location", "content-disposition", "cache-control",
                                                  "x-accel-buffering", "www-authenticate", "allow"]

    /// `?a=1&b=x%20y` for the items (empty for none), percent-encoding all but unreserved bytes.
    static func encodedQuery(_ items: [(name: String, value: String)]) -> String {
        guard !items.isEmpty else { return "" }
        return "?" + items.map { percentEncoded($0.name) + "=" + percentEncoded($0.value) }.joined(separator: "&")
    }

    /// `text` with every byte but the unreserved ones (RFC 3986) percent-encoded: a query
    /// name or value, or one path segment.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
