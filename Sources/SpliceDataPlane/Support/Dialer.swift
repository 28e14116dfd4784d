import NIOCore
import NIOPosix
import SpliceCore

/// Dials a TCP peer of a session (server, mediator, recipient) on the session's event
/// loop, with the relay's `PortHandler` installed and half-closure allowed. (NIO's
/// bootstraps set TCP_NODELAY themselves; note `.socketOption(.tcp_nodelay)` would be
/// SOL_SOCKET option 1, SO_DEBUG, which only root may set.)
enum Dialer {
    /// Connects to `address`; an IP literal skips name resolution. Fails with a `DialError`.
    static func connect(_ address: HostPort, timeout: TimeAmount, on eventLoop: EventLoop, handler: PortHandler,
                        writeBuffer: ChannelOptions.Types.WriteBufferWaterMark? = nil) -> EventLoopFuture<Channel> {
        // The initializer runs on `eventLoop` too, where the handler lives.
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
            }
        if let writeBuffer {
            bootstrap = bootstrap.channelOption(.writeBufferWaterMark, value: writeBuffer)
        }
        let connected = if let literal = try? SocketAddress(ipAddress: address.host, port: address.port) {
            bootstrap.connect(to: literal)
        } else {
            bootstrap.connect(host: address.host, port: address.port)
        }
        return connected.flatMapErrorThrowing { error in throw DialError(address, error) }
    }
}
