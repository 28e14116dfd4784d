import NIOCore
import SpliceIO

/// The smallest relay on the core, for its tests: two sockets, each one's input written to
/// the other, with back-pressure (read only while the peer is writable) and half-close.
final class PairRelay {
    final class Leg: RelaySocketDelegate {
        let socket: RelaySocket
        unowned(unsafe) var peer: Leg!
        var failures: [RelayIOError] = []
        var closedCalls = 0

        init(_ socket: RelaySocket) {
            self.socket = socket
        }

        var mayRead: Bool { peer.socket.isWritable }
        func received(_ bytes: UnsafeRawBufferPointer) { peer.socket.write(bytes) }
        func inputClosed() { peer.socket.closeOutputAfterFlush { _ in } }
        func becameWritable() { peer.socket.resumeRead() }
        func failed(_ error: RelayIOError) {
            failures.append(error)
            peer.socket.close()
        }
        func closed() { closedCalls += 1 }
    }

    let a: Leg
    let b: Leg

    init(_ a: RelaySocket, _ b: RelaySocket) {
        self.a = Leg(a)
        self.b = Leg(b)
        self.a.peer = self.b
        self.b.peer = self.a
        a.delegate = self.a
        b.delegate = self.b
        a.resumeRead()
        b.resumeRead()
    }

    func close() {
        a.socket.close()
        b.socket.close()
    }
}

@available(*, unavailable)
extension PairRelay: Sendable {}
