import NIOCore
import SpliceCore
import SpliceIO

/// Dials a split recipient on the session's loop, with a write buffer bounded by the
/// split's `buffer_bytes`: past it the socket turns unwritable, which either drops the
/// split or (block) holds the session back.
enum SplitConnector {
    /// How long dialing a recipient may take before the split fails with 502.
    static let connectTimeout = TimeAmount.seconds(5)

    static func connect(_ request: SplitRequest, on loop: RelayLoop) -> EventLoopFuture<RelaySocket> {
        RelayDialer.connect(host: request.address.host, port: request.address.port, timeout: connectTimeout, on: loop,
                            waterMarks: (low: max(1, request.bufferBytes / 2), high: request.bufferBytes))
            .assumeIsolated().flatMapErrorThrowing { error in
                throw APIError.badGateway("split recipient unreachable: \(DialError(request.address, error))")
            }.nonisolated()
    }
}
