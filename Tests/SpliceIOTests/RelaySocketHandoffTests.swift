import Foundation
import NIOCore
import SpliceIO
import SpliceTestSupport
import Synchronization
import Testing

/// What a handoff (issue 15) asks of a socket, over real TCP: suspended, it keeps its queued
/// output and moves nothing; resumed, it flushes it; relinquished, it leaves the connection
/// to whoever else holds the descriptor, without a FIN or a reset.
@Suite("Relay socket handoff", .timeLimit(.minutes(1)))
struct RelaySocketHandoffTests {
    /// A client that does not read yet, and our own copy (non-blocking) of the server side's
    /// descriptor, plus the server side itself (the "other process" holding the connection).
    private func connection() throws -> (client: TestSocket, accepted: TestSocket, fd: Int32, server: TestServer) {
        let accepted = Mutex<TestSocket?>(nil)
        let server = try TestServer { socket in accepted.withLock { $0 = socket } }
        let client = try TestSocket.connect(port: server.port, receiveBuffer: 4096)
        let deadline = ContinuousClock.now + .seconds(10)
        while accepted.withLock({ $0 }) == nil {
            guard ContinuousClock.now < deadline else { throw FixtureError("the server never accepted") }
            usleep(1000)
        }
        let serverSide = accepted.withLock { $0! }
        let fd = try serverSide.using { dup($0) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return (client, serverSide, fd, server)
    }

    /// A delegate that never reads (the handoff holds reads back).
    private final class Idle: RelaySocketDelegate {
        var mayRead: Bool { false }
        func received(_ bytes: UnsafeRawBufferPointer) {}
        func inputClosed() {}
        func becameWritable() {}
        func failed(_ error: RelayIOError) {}
        func closed() {}
    }

    @Test("relinquished with output queued: the other holder writes the rest and the peer gets every byte once, then its FIN")
    func relinquish() throws {
        let (client, accepted, fd, server) = try connection()
        defer { client.close(); accepted.close(); server.stop() }
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        var stream = ByteStream(seed: 15)
        let total = 8 << 20
        let pattern = stream.next(total)
        let queued = try loop.submit { () -> [UInt8]? in
            guard let socket = RelaySocket(tcp: fd, loop: loop) else { return nil }
            let delegate = Idle()
            socket.delegate = delegate
            pattern.withUnsafeBytes { socket.write($0) }
            let pending = socket.pendingBytes
            let queued = socket.suspendForHandoff()
            guard queued?.count == pending else { return nil }
            socket.relinquish()
            return socket.isOpen ? nil : queued
        }.wait()
        let rest = try #require(queued)
        #expect(rest.count > 0 && rest.count < total)
        #expect(Array(pattern[(total - rest.count)...]) == rest)
        // The other holder (the successor) writes what was queued; the client reads meanwhile.
        // O_NONBLOCK belongs to the open file both descriptors shared: blocking again.
        try accepted.using { fd in _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) }
        Thread.detachNewThread {
            try? accepted.send(rest)
            accepted.shutdownWrite()
        }
        #expect(try client.receiveAll() == pattern)
    }

    @Test("suspended then resumed (a handoff that failed): the queue kept flushes in order")
    func resume() throws {
        let (client, accepted, fd, server) = try connection()
        defer { client.close(); accepted.close(); server.stop() }
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        var stream = ByteStream(seed: 16)
        let total = 8 << 20
        let pattern = stream.next(total)
        // Our descriptor is the connection's only one from here on: its close is the FIN.
        accepted.close()
        let suspended = try loop.submit { () -> Bool in
            guard let socket = RelaySocket(tcp: fd, loop: loop) else { return false }
            socket.delegate = Idle()
            pattern.withUnsafeBytes { socket.write($0) }
            guard let queued = socket.suspendForHandoff(), !queued.isEmpty else { return false }
            // Suspended twice is refused: the socket is not polled, so there is nothing to stop.
            guard socket.suspendForHandoff() == nil else { return false }
            guard socket.resumeAfterHandoff() else { return false }
            socket.closeAfterFlush()
            return true
        }.wait()
        #expect(suspended)
        #expect(try client.receiveAll() == pattern)
    }
}
