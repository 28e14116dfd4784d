import NIOCore
import SpliceCore

/// Dials a split recipient on the session's loop, with a write buffer bounded by the
/// split's `buffer_bytes`: past it the channel turns unwritable, which either drops the
/// split or (block) holds the session back.
enum SplitConnector {
    /// How long dialing a recipient may take before the split fails with 502.
    static let connectTimeout = TimeAmount.seconds(5)

    static func connect(_ request: SplitRequest, on eventLoop: EventLoop, handler: PortHandler) -> EventLoopFuture<Channel> {
        Dialer.connect(request.address, timeout: connectTimeout, on: eventLoop, handler: handler,
                       writeBuffer: .init(low: max(1, request.bufferBytes / 2), high: request.bufferBytes))
            .flatMapErrorThrowing { error in
                throw APIError.badGateway("split recipient unreachable: \(error)")
            }
    }
}
