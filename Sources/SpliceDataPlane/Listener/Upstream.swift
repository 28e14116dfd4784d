import NIOCore
import NIOPosix
import SpliceCore

/// How a listener reaches its server: the address, resolved once when it is an IP literal,
/// and the connect timeout.
struct Upstream: Sendable {
    /// The address as configured.
    let address: HostPort
    /// Pre-resolved socket address for IP literals; names are resolved per dial.
    let resolved: SocketAddress?
    /// How long a dial may take.
    let connectTimeout: TimeAmount

    init(address: HostPort, connectTimeoutMs: Int) {
        self.address = address
        self.resolved = try? SocketAddress(ipAddress: address.host, port: address.port)
        self.connectTimeout = .milliseconds(Int64(connectTimeoutMs))
    }

    /// Dials the upstream on `eventLoop`, installing `handler` in the new channel.
    func connect(on eventLoop: EventLoop, handler: PortHandler) -> EventLoopFuture<Channel> {
        // The initializer runs on `eventLoop` too, where the handler lives.
        let handler = NIOLoopBound(handler, eventLoop: eventLoop)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler.value)
                }
            }
        if let resolved {
            return bootstrap.connect(to: resolved)
        }
        return bootstrap.connect(host: address.host, port: address.port)
    }
}
