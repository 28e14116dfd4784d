import NIOCore
import NIOHTTP1

/// Hands a peer's response parts to its exchange.
final class PeerResponseHandler: ChannelInboundHandler {
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
            case .fail(let reason):
                exchange.finish(PeerClient.Failure(description: reason))
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
