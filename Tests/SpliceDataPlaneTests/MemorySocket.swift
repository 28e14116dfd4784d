import NIOCore
import NIOEmbedded
import SpliceIO

@testable import SpliceDataPlane

/// A port's socket in memory: it records what is written to it, so a direction's wiring
/// and offsets are tested without sockets or a loop.
final class MemorySocket: PortSocket {
    /// Weak, unlike the relay core's: nothing here closes the socket to break the cycle.
    weak var delegate: (any RelaySocketDelegate)?
    private(set) var isOpen = true
    var isWritable = true
    var pendingBytes: Int { 0 }
    var remoteAddress: SocketAddress? { nil }
    var closeFuture: EventLoopFuture<Void> { loop.makeSucceededVoidFuture() }
    /// Every byte written, in order.
    private(set) var written: [UInt8] = []
    /// How often reads were resumed.
    private(set) var resumedReads = 0
    /// The output was half-closed.
    private(set) var outputClosed = false
    private let loop = EmbeddedEventLoop()

    func write(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen, !outputClosed else { return }
        written.append(contentsOf: bytes)
    }

    func resumeRead() { resumedReads += 1 }

    /// Half-closes at once: nothing is ever pending here.
    func closeOutputAfterFlush(_ done: @escaping (Result<Void, RelayIOError>) -> Void) {
        guard isOpen else { return done(.failure(.closed)) }
        outputClosed = true
        done(.success(()))
    }

    func closeAfterFlush() { close() }

    func reset() { close() }

    func close() { isOpen = false }
}

extension Port {
    /// A port on an in-memory socket, in no session.
    static func inMemory(_ role: PortRole) -> Port {
        Port(role: role, socket: MemorySocket(), session: nil)
    }

    /// The in-memory socket of a port made by `inMemory`.
    var memory: MemorySocket {
        guard let socket = socket as? MemorySocket else { preconditionFailure("\(role) is not on a MemorySocket") }
        return socket
    }
}
