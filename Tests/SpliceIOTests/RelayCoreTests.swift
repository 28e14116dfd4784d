import Foundation
import NIOCore
import SpliceIO
import SpliceTestSupport
import Synchronization
import Testing

@Suite("Relay core over real sockets", .timeLimit(.minutes(2)))
struct RelayCoreTests {
    @Test("8 MiB each way arrive exactly, and a half-close is passed on")
    func bulkBothWays() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let relay = try CoreRelay(upstream: echo.port)
        defer { relay.stop() }
        let client = try TestSocket.connect(port: relay.port)
        defer { client.close() }
        let total = 8 << 20
        let sender = ThreadTask { try sendStream(client, seed: 7, total: total, chunk: 100_003).digest }
        var received = Digest()
        while true {
            let chunk = try client.receive()
            if chunk.isEmpty { break }
            received.update(chunk)
        }
        let sentDigest = try await sender.value
        #expect(received.count == total)
        #expect(received.hex() == sentDigest)
    }

    @Test("a reader that stops reading holds the relay back instead of filling its memory")
    func backPressure() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let relay = try CoreRelay(upstream: echo.port)
        defer { relay.stop() }
        let client = try TestSocket.connect(port: relay.port)
        defer { client.close() }
        let total = 16 << 20
        let sender = ThreadTask { try sendStream(client, seed: 11, total: total, chunk: 65_536).count }
        // The echo's answers pile up towards a client that does not read: every buffer on
        // the way fills, and the relay must stop reading rather than queue the rest.
        try await Task.sleep(for: .milliseconds(1500))
        let pending = try relay.maxPending()
        #expect(pending <= RelaySocket.defaultWaterMarks.high + RelayLoop.scratchSize)
        var expected = ByteStream(seed: 11)
        var received = 0
        while received < total {
            let chunk = try client.receive()
            if chunk.isEmpty { break }
            #expect(chunk == expected.next(chunk.count))
            received += chunk.count
        }
        #expect(received == total)
        #expect(try await sender.value == total)
        #expect(try client.receive().isEmpty)
    }

    @Test("a dial to a port nobody listens on fails with the reason in words")
    func refused() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let refusing = try RefusingPort()
        let loop = group.nextLoop()
        let outcome = try loop.flatSubmit {
            RelayDialer.connect(host: "127.0.0.1", port: refusing.port, timeout: .seconds(5), on: loop)
                .assumeIsolated().map { socket -> String in
                    socket.close()
                    return "connected"
                }.recover { "\($0)" }.nonisolated()
        }.wait()
        #expect(outcome == "connect: connection refused")
    }

    @Test("scheduled tasks run in deadline order and a cancelled one never runs")
    func timers() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        let order = Mutex<[Int]>([])
        let late = loop.scheduleTask(in: .milliseconds(60)) { order.withLock { $0.append(3) } }
        let early = loop.scheduleTask(in: .milliseconds(20)) { order.withLock { $0.append(1) } }
        let cancelled = loop.scheduleTask(in: .milliseconds(40)) { order.withLock { $0.append(2) } }
        cancelled.cancel()
        try early.futureResult.wait()
        try late.futureResult.wait()
        #expect(throws: EventLoopError.cancelled) { try cancelled.futureResult.wait() }
        #expect(order.withLock { $0 } == [1, 3])
        #expect(try loop.submit { loop.inEventLoop }.wait())
        #expect(!loop.inEventLoop)
    }

    @Test("a pipe pair reads, writes and passes EOF like a socket")
    func pipes() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        var toSocket: [Int32] = [0, 0], fromSocket: [Int32] = [0, 0]
        #expect(pipe(&toSocket) == 0 && pipe(&fromSocket) == 0)
        defer { close(fromSocket[0]) }
        let (socketIn, socketOut) = (toSocket[0], fromSocket[1])
        // An echo on the loop: what it reads from one pipe it writes to the other.
        let echo = try loop.submit { () -> NIOLoopBound<EchoLeg> in
            let socket = RelaySocket(pipesReading: socketIn, writing: socketOut, loop: loop)!
            let leg = EchoLeg(socket)
            socket.delegate = leg
            socket.resumeRead()
            return NIOLoopBound(leg, eventLoop: loop)
        }.wait()
        let message = Array("through the pipes\n".utf8)
        #expect(message.withUnsafeBytes { write(toSocket[1], $0.baseAddress, $0.count) } == message.count)
        var back = [UInt8](repeating: 0, count: 64)
        let n = back.withUnsafeMutableBytes { read(fromSocket[0], $0.baseAddress, 64) }
        #expect(Array(back[0..<max(n, 0)]) == message)
        close(toSocket[1])
        // EOF in, so the echo shuts its output: the reader sees EOF.
        #expect(back.withUnsafeMutableBytes { read(fromSocket[0], $0.baseAddress, 64) } == 0)
        #expect(try loop.submit { echo.value.socket.inputEnded && echo.value.socket.outputShut }.wait())
        try loop.submit { echo.value.socket.close() }.wait()
    }
}

/// Writes back what it reads; passes EOF on.
private final class EchoLeg: RelaySocketDelegate {
    let socket: RelaySocket
    init(_ socket: RelaySocket) { self.socket = socket }
    var mayRead: Bool { socket.isWritable }
    func received(_ bytes: UnsafeRawBufferPointer) { socket.write(bytes) }
    func inputClosed() { socket.closeOutputAfterFlush { _ in } }
    func becameWritable() { socket.resumeRead() }
    func failed(_ error: RelayIOError) {}
    func closed() {}
}
