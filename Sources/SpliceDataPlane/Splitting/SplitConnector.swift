import NIOCore
import NIOPosix
import SpliceCore

/// Dials a split recipient on the session's loop, with a write buffer bounded by the
/// split's `buffer_bytes`: past it the channel turns unwritable, which either drops the
/// split or (block) holds the session back.
enum SplitConnector {
    /// How long dialing a recipient may take before the split fails with 502.
    static let connectTimeout = TimeAmount.seconds(5)

    static func connect(_ request: SplitRequest, on eventLoop: EventLoop, handler: PortHandler) -> EventLoopFuture<Channel> {
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        let address = request.address
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark,
                           value: .init(low: max(1, request.bufferBytes / 2), high: request.bufferBytes))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
            }
        let connected = (try? SocketAddress(ipAddress: address.host, port: address.port))
            .map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: address.host, port: address.port)
        return connected.flatMapErrorThrowing { error in
            throw APIError.badGateway("split recipient \(address) unreachable: \(error)")
        }
    }
}
