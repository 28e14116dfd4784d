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
        public var method: HTTPMethod
        /// The peer's admin base URL (`http://host:port`).
        public var baseURL: String
        /// Path and query, already encoded (`/api/v1/sessions?scope=local`).
        public var target: String
        /// Header fields to send (authorization, content type).
        public var headers: [(name: String, value: String)]
        /// The body.
        public var body: [UInt8]

        /// A request from its parts.
        public init(method: HTTPMethod, baseURL: String, target: String,
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
    var eventLoop: EventLoop { group.next() }

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
                    guard response.body.count + piece.count <= limit else { return .stop }
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
                var head = HTTPRequestHead(version: .http1_1, method: NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue),
                                           uri: request.target)
                head.headers.add(name: "Host", value: "\(host):\(port)")
                head.headers.add(name: "Connection", value: "close")
                for (name, value) in request.headers { head.headers.add(name: name, value: value) }
                if !request.body.isEmpty || request.method == .POST {
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

    /// `http://host:port[/]` split into host and port; nil for anything else.
    static func hostPort(_ url: String) -> (String, Int)? {
        guard url.hasPrefix("http://") else { return nil }
        var rest = url.dropFirst("http://".count)
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let address = try? HostPort(parsing: String(rest), field: "url") else { return nil }
        return (address.host, address.port)
    }
}

/// One exchange with a peer: finishes once, whatever ends it first (the response's end, a
/// failure, the timeout, or the consumer).
public final class PeerExchange: Sendable {
    private struct State {
        var channel: Channel?
        var finished = false
        var onFinish: [@Sendable () -> Void] = []
    }

    let handlers: PeerClient.StreamHandlers
    private let state = Mutex(State())

    init(handlers: PeerClient.StreamHandlers) {
        self.handlers = handlers
    }

    /// Ends the exchange now (the consumer has gone); the end handler is not called.
    public func cancel() {
        let channel = state.withLock { state -> Channel? in
            guard !state.finished else { return nil }
            state.finished = true
            return state.channel
        }
        channel?.close(promise: nil)
        runFinish()
    }

    /// Whether the exchange is over.
    public var isFinished: Bool { state.withLock { $0.finished } }

    /// Records the connection; false (and closes it) when the exchange already ended.
    func attach(_ channel: Channel) -> Bool {
        let attached = state.withLock { state -> Bool in
            guard !state.finished else { return false }
            state.channel = channel
            return true
        }
        if !attached { channel.close(promise: nil) }
        return attached
    }

    /// Ends the exchange with `failure` (nil: the body ended normally); only the first call counts.
    func finish(_ failure: PeerClient.Failure?) {
        let channel = state.withLock { state -> Channel?? in
            guard !state.finished else { return .none }
            state.finished = true
            return .some(state.channel)
        }
        guard case .some(let open) = channel else { return }
        open?.close(promise: nil)
        handlers.end(failure)
        runFinish()
    }

    func onFinish(_ body: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.finished { return true }
            state.onFinish.append(body)
            return false
        }
        if now { body() }
    }

    private func runFinish() {
        for body in state.withLock({ state in defer { state.onFinish = [] }; return state.onFinish }) { body() }
    }
}

/// Hands a peer's response parts to its exchange.
private final class PeerResponseHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used only on its channel's event loop.
    typealias InboundIn = HTTPClientResponsePart

    private let exchange: PeerExchange

    init(exchange: PeerExchange) {
        self.exchange = exchange
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !exchange.isFinished else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            exchange.handlers.head(Int(head.status.code), head.headers.map { ($0.name, $0.value) })
        case .body(let buffer):
            switch exchange.handlers.body(Array(buffer.readableBytesView)) {
            case .more:
                break
            case .stop:
                exchange.cancel()
            case .waitUntil(let ready):
                pause(context.channel, until: ready)
            }
        case .end:
            exchange.finish(nil)
        }
    }

    /// Stops reading from the peer until `ready` answers true or the exchange ends.
    private func pause(_ channel: Channel, until ready: @escaping @Sendable () -> Bool) {
        channel.setOption(.autoRead, value: false).whenSuccess { [exchange] in
            Self.poll(channel, exchange: exchange, ready: ready)
        }
    }

    private static func poll(_ channel: Channel, exchange: PeerExchange, ready: @escaping @Sendable () -> Bool) {
        channel.eventLoop.scheduleTask(in: .milliseconds(10)) {
            guard !exchange.isFinished else { return }
            if ready() {
                channel.setOption(.autoRead, value: true).whenSuccess { channel.read() }
            } else {
                poll(channel, exchange: exchange, ready: ready)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        exchange.finish(PeerClient.Failure(description: "the peer closed the connection before the answer ended"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        exchange.finish(PeerClient.Failure(description: "\(error)"))
        context.close(promise: nil)
    }
}
