import Foundation
import SpliceCore
import SpliceTestSupport
import Testing

@testable import SpliceDataPlane

@Suite("Mediation under load and templates", .serialized, .timeLimit(.minutes(5)))
struct MediationStressTests {
    @Test("100 concurrent streaming sessions with random splice/remove cycles stay byte-exact")
    func concurrentCycles() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let mediator = try TestServer.transform(Transform.invert)
        defer { mediator.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        let gateway = harness.gateway
        try harness.registerMediator("invert", port: mediator.port)

        let sessions = 100
        let perSession = 512 * 1024
        let clients = try (0..<sessions).map { _ in try harness.connect() }
        #expect(eventually { gateway.sessions(limit: 1000).sessions.filter { $0.state == .open }.count == sessions })
        let ids = gateway.sessions(limit: 1000).sessions.map(\.id)
        let byClient = Dictionary(uniqueKeysWithValues: gateway.sessions(limit: 1000).sessions.map { ($0.client, $0.id) })

        // Each client streams its bytes in small paced chunks and reads the echo back. The last
        // chunk waits for the cycles to end: how many fit into the streams' time must not
        // depend on how loaded the machine is.
        let cyclesDone = Latch()
        let streams: [ThreadTask<(sent: [UInt8], back: [UInt8])>] = clients.enumerated().map { index, client in
            ThreadTask {
                var generator = ByteStream(seed: UInt64(1000 + index))
                let sent = generator.next(perSession)
                let writer = ThreadTask {
                    var offset = 0
                    while offset < sent.count {
                        let end = min(offset + 2048, sent.count)
                        if end == sent.count { cyclesDone.wait(timeout: 120) }
                        try client.send(Array(sent[offset..<end]))
                        offset = end
                        usleep(10_000)
                    }
                    client.shutdownWrite()
                }
                let back = try client.receiveAll()
                _ = writer
                return (sent, back)
            }
        }
        // Meanwhile: random splice/remove cycles on random sessions, windows recorded per session.
        let windows = LockedWindows()
        let cycler = ThreadTask {
            for _ in 0..<120 {
                let id = ids.randomElement()!
                guard let hop = try? gateway.splice(session: id, HopRequest(target: .registered("invert"),
                                                                            directions: .clientToServer)) else { continue }
                usleep(UInt32.random(in: 1000...20000))
                let start = hop.legs[.clientToServer]!.splicedAt
                do {
                    let report = try gateway.removeHop(session: id, hop: hop.id)
                    windows.add(id, (start, report.removedAt[.clientToServer]!))
                } catch let error as APIError {
                    // The client's EOF came first (409) or the session already ended (404):
                    // either way the hop carried the stream from its splice to the end.
                    #expect(error.status == 409 || error.status == 404, "\(error)")
                    windows.add(id, (start, UInt64(perSession)))
                }
            }
        }
        try await cycler.value
        cyclesDone.open()
        var exact = 0
        for (index, stream) in streams.enumerated() {
            let (sent, back) = try await stream.value
            let id = try #require(byClient[localAddress(clients[index])])
            let want = expected(sent, windows: windows.of(id), Transform.invert)
            if back == want {
                exact += 1
            } else {
                let first = zip(back, want).enumerated().first { $1.0 != $1.1 }?.offset ?? min(back.count, want.count)
                Issue.record("session \(id): \(back.count) bytes back, first difference at \(first), windows \(windows.of(id))")
            }
        }
        #expect(exact == sessions)
        #expect(windows.total > 20, "only \(windows.total) completed cycles")
        for client in clients { client.close() }
        #expect(eventually { gateway.sessionCount == 0 })
        #expect(try gateway.registeredMediator("invert").inUse == 0)
        // Every socket the gateway opened for these sessions (client, server, mediator legs) is closed.
        #expect(eventually { gatewaySockets(accepting: harness.port, dialing: [echo.port, mediator.port]) == 0 })
    }

    @Test("listener templates are spliced into every new session at offset 0")
    func templates() async throws {
        let recorder = try Recorder(echo: true)
        defer { recorder.stop() }
        let plusOne = try TestServer.transform(Transform.plusOne)
        defer { plusOne.stop() }
        let group = makeRelayGroup()
        let gateway = Gateway(group: group, logger: makeTestLogger())
        defer {
            gateway.shutdown()
            shutdownTestGroup(group)
        }
        try gateway.registerMediator(MediatorSpec(name: "plus1", kind: .tcp(HostPort(host: "127.0.0.1", port: plusOne.port))))
        #expect(throws: APIError.self) {
            try gateway.addListener(ListenerSpec(listen: HostPort(host: "127.0.0.1", port: 0),
                                                 upstream: HostPort(host: "127.0.0.1", port: recorder.port),
                                                 mediators: [HopRequest(target: .registered("nope"), directions: .both)]))
        }
        let listener = try gateway.addListener(ListenerSpec(
            listen: HostPort(host: "127.0.0.1", port: 0), upstream: HostPort(host: "127.0.0.1", port: recorder.port),
            mediators: [HopRequest(target: .registered("plus1"), directions: .both)]))
        for round in 0..<3 {
            let client = try TestSocket.connect(port: listener.spec.listen.port)
            // Bytes sent before the session is even set up must pass the template too.
            let payload: [UInt8] = [UInt8(round), 10, 20, 30]
            try client.send(payload)
            #expect(try client.receive(exactly: 4) == payload.map { $0 &+ 2 })
            let session = try #require(gateway.sessions().sessions.first)
            #expect(session.hops.first?.legs[.clientToServer]?.splicedAt == 0)
            #expect(session.hops.first?.legs[.serverToClient]?.splicedAt == 0)
            client.close()
            #expect(eventually { gateway.sessionCount == 0 })
        }
        #expect(recorder.bytes == [1, 11, 21, 31, 2, 11, 21, 31, 3, 11, 21, 31])
        // A template holds its mediator: unregistering it would break every new session.
        let refused = #expect(throws: APIError.self) { try gateway.unregisterMediator("plus1") }
        #expect(refused?.status == 409)
        try gateway.removeListener(listener.id, closeSessions: true)
        try gateway.unregisterMediator("plus1")
    }

    @Test("proxy_protocol: the mediator reads a PROXY v2 header with the client and server addresses first")
    func proxyProtocolHeader() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let header = LockedBytes()
        // Keeps the first 28 bytes (header), then echoes.
        let mediator = try TestServer { socket in
            guard let first = try? socket.receive(exactly: 28) else { return }
            header.set(first)
            while let chunk = try? socket.receive(), !chunk.isEmpty { try? socket.send(chunk) }
            socket.shutdownWrite()
        }
        defer { mediator.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        try harness.gateway.registerMediator(MediatorSpec(
            name: "pp", kind: .tcp(HostPort(host: "127.0.0.1", port: mediator.port)), proxyProtocol: true))
        let (client, id) = try harness.openSession()
        _ = try harness.gateway.splice(session: id, HopRequest(target: .registered("pp"), directions: .clientToServer))
        try client.send([7, 7, 7])
        #expect(try client.receive(exactly: 3) == [7, 7, 7])
        let bytes = try #require(header.value)
        #expect(Array(bytes[0..<12]) == [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
        #expect(Array(bytes[12..<16]) == [0x21, 0x11, 0x00, 12])
        #expect(Array(bytes[16..<20]) == [127, 0, 0, 1])
        let clientPort = Int(bytes[24]) << 8 | Int(bytes[25])
        let serverPort = Int(bytes[26]) << 8 | Int(bytes[27])
        #expect("127.0.0.1:\(clientPort)" == localAddress(client))
        #expect(serverPort == echo.port)
    }

    @Test("drain timeout under close_session: 504 and the session is closed")
    func drainTimeoutClosesSession() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        // Ignores EOF and holds its connection until the test ends: the drain must time out.
        let release = Latch()
        let stubborn = try TestServer { socket in
            while let chunk = try? socket.receive(), !chunk.isEmpty { try? socket.send(chunk) }
            release.wait()
        }
        defer { release.open(); stubborn.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        try harness.registerMediator("stubborn", port: stubborn.port)
        let (client, id) = try harness.openSession()
        let hop = try harness.gateway.splice(session: id, HopRequest(target: .registered("stubborn"), directions: .both,
                                                                      drainTimeoutMs: 300))
        let error = #expect(throws: APIError.self) { try harness.gateway.removeHop(session: id, hop: hop.id) }
        #expect(error?.status == 504)
        #expect(error?.detail.contains("session \(id) closed") == true)
        #expect((try? client.receive()) ?? [] == [])
        #expect(eventually { harness.gateway.sessionCount == 0 })
        let inUse = try harness.gateway.registeredMediator("stubborn").inUse
        #expect(inUse == 0, "in use: \(inUse)")
    }
}

/// Windows per session, filled by the cycling thread.
final class LockedWindows: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var windows: [SessionID: [(UInt64, UInt64)]] = [:]
    func add(_ id: SessionID, _ window: (UInt64, UInt64)) { lock.lock(); windows[id, default: []].append(window); lock.unlock() }
    func of(_ id: SessionID) -> [(UInt64, UInt64)] { lock.lock(); defer { lock.unlock() }; return windows[id] ?? [] }
    var total: Int { lock.lock(); defer { lock.unlock() }; return windows.values.map(\.count).reduce(0, +) }
}

/// Bytes handed from a fixture thread to the test.
final class LockedBytes: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var bytes: [UInt8]?
    func set(_ value: [UInt8]) { lock.lock(); bytes = value; lock.unlock() }
    var value: [UInt8]? { lock.lock(); defer { lock.unlock() }; return bytes }
}
