import NIOCore
import SpliceCore
import SpliceTestSupport
import Testing

@testable import SpliceDataPlane

/// Weak references to relay objects, taken and read on the session's loop (a socket must
/// not be released for the last time on a test thread).
private final class Released: @unchecked Sendable {
    // @unchecked: written once on the loop, then only read there.
    private var objects: [(String, () -> AnyObject?)] = []

    /// Watches a port and its socket.
    func watch(_ name: String, _ port: Port) {
        weak var port0 = port
        weak var socket = port.socket
        objects += [("\(name) port", { port0 }), ("\(name) socket", { socket })]
    }

    /// Watches the session itself.
    func watch(_ session: Session) {
        weak var session0 = session
        objects.append(("session", { session0 }))
    }

    /// What is still alive.
    var alive: [String] { objects.filter { $0.1() != nil }.map(\.0) }

    /// Waits until every watched object is gone; returns what is still alive after `timeout`.
    func awaitRelease(on eventLoop: EventLoop, timeout: Double = 10) -> [String] {
        var left: [String] = []
        _ = eventually(timeout: timeout) {
            left = (try? eventLoop.submit { self.alive }.wait()) ?? ["(event loop gone)"]
            return left.isEmpty
        }
        return left
    }
}

/// Runs `body` with the live session on its loop.
private func onSession(_ harness: RelayHarness, _ id: SessionID,
                       _ body: @escaping @Sendable (Session) -> Void) throws -> EventLoop {
    let record = try #require(harness.gateway.registry.record(id))
    try record.withSession { session in
        body(session)
        return session.eventLoop.makeSucceededVoidFuture()
    }.wait()
    return record.eventLoop
}

@Suite("Relay objects are released over real sockets", .serialized, .timeLimit(.minutes(2)))
struct ReleaseTests {
    @Test("a session that ended lets go of its ports and sockets")
    func endedSessionIsReleased() throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        let (client, id) = try harness.openSession()
        defer { client.close() }
        try client.send(Array("ping\n".utf8))
        #expect(try client.receive(exactly: 5) == Array("ping\n".utf8))

        let watched = Released()
        let loop = try onSession(harness, id) { session in
            watched.watch(session)
            if let port = session.client { watched.watch("client", port) }
            if let port = session.server { watched.watch("server", port) }
        }
        #expect(try loop.submit { watched.alive.count }.wait() == 5)

        client.shutdownWrite()
        #expect(try client.receiveAll().isEmpty)
        #expect(eventually { harness.gateway.sessionCount == 0 })
        #expect(watched.awaitRelease(on: loop) == [])
    }

    @Test("a removed hop lets go of its mediator ports while the session goes on")
    func removedHopIsReleased() throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let mediator = try TestServer.echo()
        defer { mediator.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        try harness.registerMediator("identity", port: mediator.port)
        let (client, id) = try harness.openSession()
        defer { client.close() }

        for round in 0..<3 {
            let watched = Released()
            let hop = try harness.gateway.splice(session: id, HopRequest(target: .registered("identity"),
                                                                         directions: .both))
            let payload = Array("round \(round)\n".utf8)
            try client.send(payload)
            #expect(try client.receive(exactly: payload.count) == payload)
            let loop = try onSession(harness, id) { session in
                for (direction, leg) in session.hop(hop.id)?.legs ?? [:] {
                    watched.watch("hop \(hop.id) \(direction.rawValue)", leg.port)
                }
            }
            #expect(try loop.submit { watched.alive.count }.wait() == 4)
            _ = try harness.gateway.removeHop(session: id, hop: hop.id)
            #expect(watched.awaitRelease(on: loop) == [])
        }
        let payload = Array("after\n".utf8)
        try client.send(payload)
        #expect(try client.receive(exactly: payload.count) == payload)
        #expect(try harness.gateway.registeredMediator("identity").inUse == 0)
    }

    @Test("a removed split lets go of its recipient's port")
    func removedSplitIsReleased() throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let recipient = try Recorder()
        defer { recipient.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        let (client, id) = try harness.openSession()
        defer { client.close() }

        let split = try harness.gateway.addSplit(session: id, SplitRequest(
            address: HostPort(host: "127.0.0.1", port: recipient.port), directions: .clientToServer))
        let payload = Array("copied\n".utf8)
        try client.send(payload)
        #expect(try client.receive(exactly: payload.count) == payload)
        #expect(eventually { recipient.bytes == payload })
        let watched = Released()
        let loop = try onSession(harness, id) { session in
            let legs = session.splits.first { $0.id == split.id }?.legs ?? [:]
            for leg in legs.values {
                watched.watch("split \(split.id)", leg.port)
            }
        }
        #expect(try loop.submit { watched.alive.count }.wait() == 2)
        try harness.gateway.removeSplit(session: id, split: split.id)
        #expect(watched.awaitRelease(on: loop) == [])
        try client.send(payload)
        #expect(try client.receive(exactly: payload.count) == payload)
    }
}
