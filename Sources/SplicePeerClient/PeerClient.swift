import NIOCore
import NIOHTTP1
import NIOPosix
import SpliceCore
import Synchronization

/// HTTP/1.1 requests to another node's admin API: one connection per request, closed after
/// the response, on one event loop of its own (never the relay's, never an MHD thread).
public final class PeerClient: Sendable {
    /// A request to a peer.
    public struct Request: Sendable {
        /// `GET`, `POST`, …
        public var method: String
        /// The peer's admin base URL (`http://host:port`).
        public var baseURL: String
        /// Path and query, already encoded (`/api/v1/sessions?scope=local`).
        public var target: String
        /// Header fields to send (authorization, content type).
        public var headers: [(name: String, value: String)]
        /// The body.
        public var body: [UInt8]

        /// A request from its parts.
        public init(method: String, baseURL: String, target: String,
                    headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
            self.method = method
            self.baseURL = baseURL
            self.target = target
            self.headers = headers
            self.body = body
        }
    }

    /// A complete response.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        /// The first value of header `name` (case-insensitive).
        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// Why a request to a peer failed.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// What a consumer wants after taking a piece of the body.
    public enum Flow: Sendable {
        /// Go on reading.
        case more
        /// Stop reading until the check answers true (polled every 10 ms): the consumer's
        /// buffer is full, and the peer is slowed through TCP instead of losing bytes.
        case waitUntil(@Sendable () -> Bool)
        /// Close the connection; the end handler is not called.
        case stop
        /// Close the connection and end the exchange with this failure.
        case fail(String)
    }

    /// What a streamed response's consumer does with each part; called on the client's loop.
    public struct StreamHandlers: Sendable {
        /// The status and header fields, once.
        public var head: @Sendable (Int, [(name: String, value: String)]) -> Void
        /// A piece of the body, and what to do next.
        public var body: @Sendable ([UInt8]) -> Flow
        /// The end: nil when the body ended normally, else why it did not.
        public var end: @Sendable (Failure?) -> Void

        public init(head: @escaping @Sendable (Int, [(name: String, value: String)]) -> Void,
                    body: @escaping @Sendable ([UInt8]) -> Flow, end: @escaping @Sendable (Failure?) -> Void) {
            self.head = head
            self.body = body
            self.end = end
        }
    }

    private let group: MultiThreadedEventLoopGroup
    private let connectTimeout: TimeAmount

    /// A client with its own event loop.
    public init(connectTimeout: TimeAmount = .seconds(1)) {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.connectTimeout = connectTimeout
    }

    /// A loop of the client's, for timers of its users.
    public var eventLoop: EventLoop { group.next() }

    /// Stops the client's loop; requests in flight fail.
    public func shutdown() {
        try? group.syncShutdownGracefully()
    }

    /// Sends `request` and collects the whole response, failing after `timeout`.
    public func send(_ request: Request, timeout: TimeAmount = .seconds(5),
                     completion: @escaping @Sendable (Result<Response, Failure>) -> Void) {
        let collected = Mutex<Response>(Response(status: 0, headers: [], body: []))
        let limit = 64 << 20
        stream(request, timeout: timeout, handlers: StreamHandlers(
            head: { status, headers in
                collected.withLock { $0.status = status; $0.headers = headers }
            },
            body: { piece in
                collected.withLock { response -> Flow in
                    guard response.body.count + piece.count <= limit else {
                        return .fail("the answer is larger than \(limit >> 20) MiB")
                    }
                    response.body.append(contentsOf: piece)
                    return .more
                }
            },
            end: { failure in
                if let failure {
                    completion(.failure(failure))
                } else {
                    completion(.success(collected.withLock { $0 }))
                }
            }))
    }

    /// The response to `request`, for async callers.
    public func send(_ request: Request, timeout: TimeAmount = .seconds(5)) async -> Result<Response, Failure> {
        await withCheckedContinuation { continuation in
            send(request, timeout: timeout) { continuation.resume(returning: $0) }
        }
    }

    /// Sends `request` and hands the response to `handlers` as it arrives. `timeout`, when
    /// given, bounds the whole exchange; a stream (events, capture) passes nil. Returns a
    /// handle that ends the exchange early.
    @discardableResult
    public func stream(_ request: Request, timeout: TimeAmount?, handlers: StreamHandlers) -> PeerExchange {
        let exchange = PeerExchange(handlers: handlers)
        guard let (host, port) = Self.hostPort(request.baseURL) else {
            exchange.finish(Failure(description: "not an http://host:port URL: \(request.baseURL)"))
            return exchange
        }
        let loop = group.next()
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // A peer whose host vanishes without a reset is noticed on a long stream too.
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(PeerResponseHandler(exchange: exchange))
                }
            }
        if let timeout {
            let deadline = loop.scheduleTask(in: timeout) {
                exchange.finish(Failure(description: "no complete answer from \(request.baseURL) within \(timeout)"))
            }
            exchange.onFinish { deadline.cancel() }
        }
        bootstrap.connect(host: host, port: port).whenComplete { result in
            switch result {
            case .failure(let error):
                exchange.finish(Failure(description: "cannot reach \(request.baseURL): \(error)"))
            case .success(let channel):
                guard exchange.attach(channel) else { return }
                var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: request.method),
                                           uri: request.target)
                head.headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
                head.headers.add(name: "Connection", value: "close")
                for (name, value) in request.headers { head.headers.add(name: name, value: value) }
                if !request.body.isEmpty || request.method == "POST" {
                    head.headers.add(name: "Content-Length", value: "\(request.body.count)")
                }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                if !request.body.isEmpty {
                    channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: request.body))), promise: nil)
                }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            }
        }
        return exchange
    }

    /// `http://host:port[/]` split into host and port; nil for anything else (what this
    /// client cannot reach: https, a path, no port).
    public static func hostPort(_ url: String) -> (String, Int)? {
        guard url.hasPrefix("http://") else { return nil }
        var rest = url.dropFirst("http://".count)
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let address = try? HostPort(parsing: String(rest), field: "url") else { return nil }
        return (address.host, address.port)
    }
}

