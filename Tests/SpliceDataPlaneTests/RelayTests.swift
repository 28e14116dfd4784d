import Foundation
import NIOPosix
import SpliceCore
import SpliceTestSupport
import Testing

@testable import SpliceDataPlane

/// A gateway with one listener in front of `upstream`, torn down by `close()`.
final class RelayHarness: @unchecked Sendable {
    // @unchecked: immutable after init; the gateway itself is thread-safe.
    let group = makeRelayGroup()
    let gateway: Gateway
    let listener: ListenerSnapshot

    init(upstreamPort: Int, connectTimeoutMs: Int = 5_000) throws {
        gateway = Gateway(group: group, logger: makeTestLogger())
        listener = try gateway.addListener(ListenerSpec(
            listen: HostPort(host: "127.0.0.1", port: 0),
            upstream: HostPort(host: "127.0.0.1", port: upstreamPort),
            connectTimeoutMs: connectTimeoutMs))
    }

    var port: Int { listener.spec.listen.port }

    func connect(receiveBuffer: Int? = nil) throws -> TestSocket {
        try TestSocket.connect(port: port, receiveBuffer: receiveBuffer)
    }

    /// Connects a client and waits until its session is relaying; the only session expected.
    func openSession() throws -> (TestSocket, SessionID) {
        let client = try connect()
        guard eventually(timeout: 10, { gateway.sessions().sessions.first?.state == .open }),
              let id = gateway.sessions().sessions.first?.id
        else { throw FixtureError("no open session on the harness listener") }
        return (client, id)
    }

    /// Registers a TCP mediator listening on 127.0.0.1:`port`.
    func registerMediator(_ name: MediatorName, port: Int, proxyProtocol: Bool = false) throws {
        try gateway.registerMediator(MediatorSpec(name: name, kind: .tcp(HostPort(host: "127.0.0.1", port: port)),
                                                  proxyProtocol: proxyProtocol))
    }

    func close() {
        gateway.shutdown()
        try? group.syncShutdownGracefully()
    }
}

/// Sends `total` bytes of `seed`'s stream in chunks on a thread; returns the digest sent.
func sendStream(_ socket: TestSocket, total: Int, seed: UInt64, thenShutdown: Bool = true) -> ThreadTask<String> {
    ThreadTask {
        var stream = ByteStream(seed: seed)
        var digest = Digest()
        var sent = 0
        while sent < total {
            let chunk = stream.next(min(256 * 1024, total - sent))
            digest.update(chunk)
            try socket.send(chunk)
            sent += chunk.count
        }
        if thenShutdown { socket.shutdownWrite() }
        return digest.hex()
    }
}

/// Reads until EOF, `pause` seconds between reads of at most `chunk` bytes; returns the digest.
func receiveStream(_ socket: TestSocket, chunk: Int = 65536, pause: Double = 0) -> ThreadTask<Digest> {
    ThreadTask {
        var digest = Digest()
        while true {
            let bytes = try socket.receive(max: chunk)
            if bytes.isEmpty { return digest }
            digest.update(bytes)
            if pause > 0 { usleep(UInt32(pause * 1_000_000)) }
        }
    }
}

@Suite("Relay over real sockets", .serialized, .timeLimit(.minutes(3)))
struct RelayTests {
    @Test("32 MiB each way through an echo server, slow reader, client half-close: bytes exact")
    func bulkEchoWithSlowReader() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }

        let total = 32 << 20
        let client = try harness.connect(receiveBuffer: 64 * 1024)
        // The reader starts slow (small reads with pauses) so every buffer on the way fills,
        // then speeds up so the test ends in seconds.
        let slowPart = ThreadTask { () -> Digest in
            var digest = Digest()
            for _ in 0..<50 {
                let bytes = try client.receive(max: 4096)
                digest.update(bytes)
                usleep(10_000)
            }
            return digest
        }
        let sender = sendStream(client, total: total, seed: 1)
        var digest = try await slowPart.value
        while true {
            let bytes = try client.receive()
            if bytes.isEmpty { break }
            digest.update(bytes)
        }
        let sent = try await sender.value
        #expect(digest.count == total)
        #expect(digest.hex() == sent)
        #expect(eventually { harness.gateway.sessionCount == 0 })
    }

    @Test("server answers after the client's EOF: 32 MiB back to a slow reader, bytes exact")
    func serverAnswersAfterClientEOF() async throws {
        let total = 32 << 20
        // Reads the whole request, then answers with a stream seeded by its length.
        let server = try TestServer { socket in
            guard let request = try? socket.receiveAll() else { return socket.close() }
            var stream = ByteStream(seed: UInt64(request.count))
            var sent = 0
            while sent < total {
                let chunk = stream.next(min(256 * 1024, total - sent))
                if (try? socket.send(chunk)) == nil { break }
                sent += chunk.count
            }
            socket.close()
        }
        defer { server.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }

        let client = try harness.connect(receiveBuffer: 64 * 1024)
        try client.send(Array("hello, 19 bytes...!".utf8))
        client.shutdownWrite()
        let received = try await receiveStream(client, chunk: 16384, pause: 0.0002).value

        var expected = ByteStream(seed: 19)
        var expectedDigest = Digest()
        expectedDigest.update(expected.next(total))
        #expect(received.count == total)
        #expect(received.hex() == expectedDigest.hex())
        #expect(eventually { harness.gateway.sessionCount == 0 })
    }

    @Test("server closes its side first, the client keeps sending: every client byte still arrives")
    func serverClosesFirst() async throws {
        let total = 8 << 20
        let received = LockedDigest()
        let server = try TestServer { socket in
            try? socket.send(Array("bye".utf8))
            socket.shutdownWrite()
            var digest = Digest()
            while let chunk = try? socket.receive(), !chunk.isEmpty { digest.update(chunk) }
            received.set(digest)
            socket.close()
        }
        defer { server.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }

        let client = try harness.connect()
        #expect(try client.receive(exactly: 3) == Array("bye".utf8))
        #expect(try client.receive().isEmpty)
        let sent = try await sendStream(client, total: total, seed: 5).value
        #expect(eventually { received.value != nil })
        #expect(received.value?.count == total)
        #expect(received.value?.hex() == sent)
        #expect(eventually { harness.gateway.sessionCount == 0 })
    }

    @Test("a stalled reader does not make the gateway buffer the writer's stream")
    func stalledReaderIsBackPressured() async throws {
        let written = LockedCounter()
        let server = try TestServer { socket in
            socket.setOption(SO_SNDBUF, 64 * 1024)
            socket.setTimeout(1.5)
            var stream = ByteStream(seed: 7)
            // Writes until a send times out: the whole path is full.
            while written.value < 64 << 20 {
                let chunk = stream.next(65536)
                guard (try? socket.send(chunk)) != nil else { break }
                written.add(chunk.count)
            }
        }
        defer { server.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }

        let client = try harness.connect(receiveBuffer: 64 * 1024)
        // Never read; wait until the writer has stopped making progress.
        var last = -1
        while written.value != last {
            last = written.value
            try await Task.sleep(for: .milliseconds(500))
        }
        // What the kernel may hold on the gateway's two sockets (receive buffers autotune up
        // to tcp_rmem's maximum, 32 MiB on some kernels; send buffers up to tcp_wmem's), plus
        // the gateway's own bounded queue (under 1 MiB) and the test sockets' 64 KiB each:
        // below the 64 MiB the server tried, unless the gateway buffered the stream itself.
        let bound = Self.tcpBufferMax("tcp_rmem") + Self.tcpBufferMax("tcp_wmem") + (2 << 20)
        #expect(bound < 64 << 20, "this kernel's buffers alone could hold the whole stream")
        #expect(written.value < bound, "server pushed \(written.value) bytes into a stalled path")
        client.close()
    }

    /// The largest buffer the kernel autotunes a TCP socket to (third field of the sysctl).
    private static func tcpBufferMax(_ name: String) -> Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/\(name)", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } ?? (6 << 20)
    }

    @Test("200 concurrent sessions echo byte-exact and are listed while open, gone after")
    func concurrentSessions() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }

        let clients = try (0..<200).map { _ in try harness.connect() }
        #expect(eventually { harness.gateway.sessions(limit: 1000).sessions.filter { $0.state == .open }.count == 200 })
        let listed = Set(harness.gateway.sessions(limit: 1000).sessions.map(\.client))
        let local = Set(clients.map(localAddress))
        #expect(listed == local)

        try await withThrowingTaskGroup(of: Bool.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    var stream = ByteStream(seed: UInt64(index + 100))
                    let payload = stream.next(10_000 + index * 97)
                    try client.send(payload)
                    let back = try client.receive(exactly: payload.count)
                    return back == payload
                }
            }
            for try await ok in group { #expect(ok) }
        }
        let counted = try harness.gateway.session(harness.gateway.sessions(limit: 1).sessions[0].id).bytes
        #expect(counted.clientToServer == counted.serverToClient)
        for client in clients { client.close() }
        #expect(eventually { harness.gateway.sessionCount == 0 })
        #expect(harness.gateway.sessions(limit: 1000).sessions.isEmpty)
    }

    @Test("closing a session over the API closes both sides")
    func killClosesBothSides() async throws {
        let serverSawEOF = LockedCounter()
        let server = try TestServer { socket in
            _ = try? socket.receiveAll()
            serverSawEOF.add(1)
        }
        defer { server.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }

        let client = try harness.connect()
        try client.send([1, 2, 3])
        #expect(eventually { harness.gateway.sessions().sessions.first?.bytes.clientToServer == 3 })
        let id = try #require(harness.gateway.sessions().sessions.first?.id)
        try harness.gateway.closeSession(id)
        #expect(try client.receive().isEmpty)
        #expect(eventually { serverSawEOF.value == 1 })
        #expect(throws: APIError.self) { try harness.gateway.session(id) }
        #expect(throws: APIError.self) { try harness.gateway.closeSession(id) }
    }

    @Test("a refused upstream closes the client promptly and is counted; the gateway keeps serving")
    func refusedUpstream() async throws {
        let dead = try RefusingPort()
        defer { withExtendedLifetime(dead) {} }
        let harness = try RelayHarness(upstreamPort: dead.port)
        defer { harness.close() }

        for _ in 0..<3 {
            let client = try harness.connect()
            client.setTimeout(5)
            let answer = try? client.receive()
            #expect(answer == nil || answer == [])
        }
        #expect(eventually { (try? harness.gateway.listener(harness.listener.id).upstreamFailures) == 3 })
        #expect(eventually { harness.gateway.sessionCount == 0 })
    }

    @Test("no socket is left open after hundreds of sessions, closed or reset")
    func noDescriptorLeak() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        for batch in 0..<6 {
            let clients = try (0..<50).map { _ in try harness.connect() }
            if batch == 0 {
                // The measure sees them: two gateway sockets per live session.
                #expect(eventually { gatewaySockets(accepting: harness.port, dialing: [echo.port]) == 100 }, "saw \(gatewaySockets(accepting: harness.port, dialing: [echo.port]))")
            }
            for (i, client) in clients.enumerated() {
                let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 100)
                try client.send(payload)
                #expect(try client.receive(exactly: 100) == payload)
                if (i + batch) % 3 == 0 { client.reset() } else { client.close() }
            }
        }
        #expect(eventually { harness.gateway.sessionCount == 0 })
        #expect(eventually { echo.accepted >= 300 })
        #expect(eventually { gatewaySockets(accepting: harness.port, dialing: [echo.port]) == 0 },
                "\(gatewaySockets(accepting: harness.port, dialing: [echo.port])) sockets left")
    }

}

/// The `host:port` a test socket is bound to locally.
func localAddress(_ socket: TestSocket) -> String {
    "127.0.0.1:\(socket.localPort)"
}

/// A counter shared between a fixture thread and the test.
final class LockedCounter: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) { lock.lock(); count += n; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// A digest handed from a fixture thread to the test.
final class LockedDigest: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var digest: Digest?
    func set(_ value: Digest) { lock.lock(); digest = value; lock.unlock() }
    var value: Digest? { lock.lock(); defer { lock.unlock() }; return digest }
}
