import Foundation
import NIOCore
import SpliceIO
import SpliceTestSupport
import Synchronization
import Testing

/// A listener on the core whose every client is relayed to `upstream` by a `PairRelay`.
private final class CoreRelay: @unchecked Sendable {
    // @unchecked: `relays` is guarded by its Mutex; the relays themselves live on their loops.
    let group = RelayLoopGroup(loopCount: 2)
    let listener: RelayListener
    let relays = RelayList()

    init(upstream: Int) throws {
        let relays = self.relays
        listener = try RelayListener.bind(host: "127.0.0.1", port: 0, group: group) { client, _ in
            let loop = client.loop
            RelayDialer.connect(host: "127.0.0.1", port: upstream, timeout: .seconds(5), on: loop)
                .assumeIsolated().whenComplete { result in
                    switch result {
                    case .success(let server):
                        let relay = PairRelay(client, server)
                        relays.list.withLock { $0.append(NIOLoopBound(relay, eventLoop: loop)) }
                    case .failure:
                        client.close()
                    }
                }
        }
    }

    var port: Int { listener.localAddress.port ?? 0 }

    /// The largest number of bytes any relay socket holds right now.
    func maxPending() throws -> Int {
        let bound = relays.list.withLock { $0 }
        return try bound.map { relay in
            try relay.eventLoop.submit { max(relay.value.a.socket.pendingBytes, relay.value.b.socket.pendingBytes) }.wait()
        }.max() ?? 0
    }

    func stop() {
        _ = try? listener.close().wait()
        let bound = relays.list.withLock { $0 }
        for relay in bound { try? relay.eventLoop.submit { relay.value.close() }.wait() }
        try? group.syncShutdownGracefully()
    }
}

/// Sends `total` bytes of `ByteStream(seed:)` in `chunk`-sized writes, then half-closes;
/// returns the count and SHA-256 of what was sent.
private func sendStream(_ client: TestSocket, seed: UInt64, total: Int, chunk: Int) throws -> (count: Int, digest: String) {
    var stream = ByteStream(seed: seed)
    var digest = Digest()
    var sent = 0
    while sent < total {
        let bytes = stream.next(min(chunk, total - sent))
        digest.update(bytes)
        try client.send(bytes)
        sent += bytes.count
    }
    client.shutdownWrite()
    return (sent, digest.hex())
}

/// The relays a `CoreRelay` made, one per client.
private final class RelayList: Sendable {
    let list = Mutex<[NIOLoopBound<PairRelay>]>([])
}

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
