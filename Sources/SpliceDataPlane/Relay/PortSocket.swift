import NIOCore
import SpliceIO

/// What a `Port` needs of the connection it drives: the relay core's `RelaySocket`, or an
/// in-memory stand-in, so that a direction's wiring and offsets are tested without sockets.
///
/// Class-bound: a port shares its socket with whoever else holds it (a dial, the session's
/// end), and the socket reports back to the port as its delegate.
protocol PortSocket: AnyObject {
    /// What the socket reports to.
    var delegate: (any RelaySocketDelegate)? { get set }
    /// Not yet closed.
    var isOpen: Bool { get }
    /// Takes more output without growing past its high-water mark.
    var isWritable: Bool { get }
    /// Output written and not yet taken by the peer.
    var pendingBytes: Int { get }
    /// The peer's address (nil for pipes, or once the connection is gone).
    var remoteAddress: SocketAddress? { get }
    /// Completes once the socket is closed.
    var closeFuture: EventLoopFuture<Void> { get }
    /// Writes now; what the peer cannot take yet waits in the socket.
    func write(_ bytes: UnsafeRawBufferPointer)
    /// Reads again if input was left waiting while reads were held.
    func resumeRead()
    /// Half-closes the output once everything written before has gone out.
    func closeOutputAfterFlush(_ done: @escaping (Result<Void, RelayIOError>) -> Void)
    /// Closes once everything written has gone out.
    func closeAfterFlush()
    /// Closes now.
    func close()
    /// Closes with a reset (RST), so the peer knows its stream was cut short.
    func reset()
}

extension RelaySocket: PortSocket {}
