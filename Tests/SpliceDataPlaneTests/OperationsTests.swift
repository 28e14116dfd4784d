import Foundation
import NIOPosix
import SpliceCore
import SpliceTestSupport
import Testing

@testable import SpliceDataPlane

/// A gateway for operations tests: listeners made on demand, torn down by `close()`.
private final class OperationsHarness: @unchecked Sendable {
    // @unchecked: immutable after init; the gateway itself is thread-safe.
    let group = makeRelayGroup()
    let gateway: Gateway

    init(maxSessions: Int? = nil) {
        gateway = Gateway(group: group, logger: makeTestLogger(), maxSessions: maxSessions)
    }

    func listener(upstream: Int, maxSessions: Int? = nil, idleTimeoutMs: Int? = nil) throws -> ListenerSnapshot {
        try gateway.addListener(ListenerSpec(
            listen: HostPort(host: "127.0.0.1", port: 0), upstream: HostPort(host: "127.0.0.1", port: upstream),
            maxSessions: maxSessions, idleTimeoutMs: idleTimeoutMs))
    }

    /// One sample of the `/metrics` text: `name{labels}` → value; nil when absent.
    func metric(_ name: String, _ labels: String = "") -> Double? {
        let key = labels.isEmpty ? name : "\(name){\(labels)}"
        for line in gateway.metricsText().split(separator: "\n") where line.hasPrefix(key + " ") {
            return Double(line.dropFirst(key.count + 1))
        }
        return nil
    }

    func close() {
        gateway.shutdown()
        shutdownTestGroup(group)
    }
}

/// Sends `bytes` and reads the same number back (through an echo upstream).
private func roundTrip(_ socket: TestSocket, _ bytes: [UInt8]) throws -> [UInt8] {
    try socket.send(bytes)
    return try socket.receive(exactly: bytes.count)
}

/// Whether the gateway closed `socket` (EOF or reset) within its receive timeout.
private func closedByGateway(_ socket: TestSocket, within seconds: Double) -> Bool {
    socket.setTimeout(seconds)
    do {
        while true {
            if try socket.receive().isEmpty { return true }
        }
    } catch {
        // A reset is a close too; a timeout (EAGAIN) is not.
        return errno == ECONNRESET
    }
}

@Suite("Operations: metrics, limits, idle timeout", .serialized, .timeLimit(.minutes(2)))
struct OperationsTests {
    @Test("metrics follow a session: gauge up then down, opened/closed counted, bytes per direction")
    func metricsFollowASession() throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = OperationsHarness()
        defer { harness.close() }
        let listener = try harness.listener(upstream: echo.port)
        let label = "listener=\"\(listener.id)\""
        #expect(harness.metric("splicegate_sessions_active", label) == 0)

        let client = try TestSocket.connect(port: listener.spec.listen.port, timeout: 10)
        var stream = ByteStream(seed: 7)
        let payload = stream.next(100_000)
        #expect(try roundTrip(client, payload) == payload)
        #expect(harness.metric("splicegate_sessions_active", label) == 1)
        #expect(harness.metric("splicegate_sessions_opened_total", label) == 1)
        // Bytes of a live session are counted at scrape time, without a metrics call per read.
        #expect(harness.metric("splicegate_relayed_bytes_total", "direction=\"client_to_server\"") == 100_000)

        client.shutdownWrite()
        #expect(try client.receiveAll().isEmpty)
        client.close()
        #expect(eventually { harness.metric("splicegate_sessions_active", label) == 0 })
        // The session leaves the live gauge a moment before it joins the closed counters.
        #expect(eventually { harness.metric("splicegate_sessions_closed_total", "\(label),reason=\"completed\"") == 1 })
        #expect(harness.metric("splicegate_relayed_bytes_total", "direction=\"client_to_server\"") == 100_000)
        #expect(harness.metric("splicegate_relayed_bytes_total", "direction=\"server_to_client\"") == 100_000)
        let text = harness.gateway.metricsText()
        #expect(text.contains("# TYPE splicegate_sessions_closed_total counter"))
        #expect(text.contains("# TYPE splicegate_sessions_active gauge"))
    }

    @Test("an unreachable upstream is counted as a connect failure")
    func upstreamFailureCounted() throws {
        // Reserved, not closed: a closed port could be handed to a test running meanwhile.
        let unused = try RefusingPort()
        defer { withExtendedLifetime(unused) {} }
        let harness = OperationsHarness()
        defer { harness.close() }
        let listener = try harness.listener(upstream: unused.port)
        let client = try TestSocket.connect(port: listener.spec.listen.port, timeout: 10)
        defer { client.close() }
        #expect(closedByGateway(client, within: 10))
        let labels = "listener=\"\(listener.id)\""
        #expect(eventually { harness.metric("splicegate_upstream_connect_failures_total", labels) == 1 })
        #expect(eventually {
            harness.metric("splicegate_sessions_closed_total", "\(labels),reason=\"upstream_unreachable\"") == 1
        })
    }

    @Test("max_sessions: the client over the limit is closed at once and counted, the others go on")
    func listenerLimit() throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = OperationsHarness()
        defer { harness.close() }
        let listener = try harness.listener(upstream: echo.port, maxSessions: 2)
        let port = listener.spec.listen.port
        let first = try TestSocket.connect(port: port, timeout: 10)
        let second = try TestSocket.connect(port: port, timeout: 10)
        defer { first.close(); second.close() }
        #expect(try roundTrip(first, Array("one".utf8)) == Array("one".utf8))
        #expect(try roundTrip(second, Array("two".utf8)) == Array("two".utf8))

        let third = try TestSocket.connect(port: port, timeout: 10)
        defer { third.close() }
        #expect(closedByGateway(third, within: 5))
        #expect(try harness.gateway.listener(listener.id).rejectedSessions == 1)
        #expect(harness.metric("splicegate_sessions_rejected_total",
                               "listener=\"\(listener.id)\",limit=\"listener\"") == 1)

        // The admitted ones are unaffected.
        var stream = ByteStream(seed: 3)
        let payload = stream.next(64 * 1024)
        #expect(try roundTrip(first, payload) == payload)
        #expect(try roundTrip(second, payload) == payload)

        // A place freed is a place to take.
        first.close()
        #expect(eventually { (try? harness.gateway.listener(listener.id).activeSessions) == 1 })
        let fourth = try TestSocket.connect(port: port, timeout: 10)
        defer { fourth.close() }
        #expect(try roundTrip(fourth, Array("four".utf8)) == Array("four".utf8))
    }

    @Test("--max-sessions holds across listeners")
    func globalLimit() throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = OperationsHarness(maxSessions: 1)
        defer { harness.close() }
        let one = try harness.listener(upstream: echo.port)
        let two = try harness.listener(upstream: echo.port)
        let admitted = try TestSocket.connect(port: one.spec.listen.port, timeout: 10)
        defer { admitted.close() }
        #expect(try roundTrip(admitted, Array("hello".utf8)) == Array("hello".utf8))
        let refused = try TestSocket.connect(port: two.spec.listen.port, timeout: 10)
        defer { refused.close() }
        #expect(closedByGateway(refused, within: 5))
        #expect(harness.metric("splicegate_sessions_rejected_total", "listener=\"\(two.id)\",limit=\"global\"") == 1)
        #expect(try roundTrip(admitted, Array("still".utf8)) == Array("still".utf8))
    }

    @Test("idle_timeout_ms closes an idle session with reason idle, not a busy one")
    func idleTimeout() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = OperationsHarness()
        defer { harness.close() }
        // Generous margins: a loaded machine may stall the busy client for a while, and
        // only "idle closes, busy stays" is under test here, not how fast.
        let listener = try harness.listener(upstream: echo.port, idleTimeoutMs: 1500)
        let port = listener.spec.listen.port
        let idle = try TestSocket.connect(port: port, timeout: 10)
        let busy = try TestSocket.connect(port: port, timeout: 10)
        defer { idle.close(); busy.close() }
        #expect(try roundTrip(idle, [1]) == [1])
        let lastIdleByte = Date()

        // The busy client moves a byte every 100 ms until the checks are done: were it to stop
        // at a fixed time, a test resumed late on a loaded machine would see it go idle too.
        let done = LockedCounter()
        let chatter = ThreadTask { () -> Int in
            var moved = 0
            while done.value == 0 {
                let byte = [UInt8(truncatingIfNeeded: moved)]
                guard (try? roundTrip(busy, byte)) == byte else { return -1 }
                moved += 1
                usleep(100_000)
            }
            return moved
        }
        #expect(closedByGateway(idle, within: 10))
        let idleFor = Date().timeIntervalSince(lastIdleByte)
        #expect(idleFor >= 1.0, "closed after \(idleFor) s, before its idle timeout")
        // The client may see the close before the session's end is counted: poll.
        #expect(eventually {
            harness.metric("splicegate_sessions_closed_total", "listener=\"\(listener.id)\",reason=\"idle\"") == 1
        }, "\(harness.gateway.metricsText().split(separator: "\n").filter { $0.hasPrefix("splicegate_sessions") })")
        #expect(try harness.gateway.listener(listener.id).activeSessions == 1)
        done.add(1)
        // It outlived the idle one, which was closed a timeout after its last byte.
        #expect(try await chatter.value > 0)
    }

    @Test("stopAccepting: new clients are refused, live sessions go on")
    func stopAccepting() throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = OperationsHarness()
        defer { harness.close() }
        let listener = try harness.listener(upstream: echo.port)
        let live = try TestSocket.connect(port: listener.spec.listen.port, timeout: 10)
        defer { live.close() }
        #expect(try roundTrip(live, Array("before".utf8)) == Array("before".utf8))
        harness.gateway.stopAccepting()
        #expect(throws: (any Error).self) { try TestSocket.connect(port: listener.spec.listen.port, timeout: 5) }
        #expect(try roundTrip(live, Array("after".utf8)) == Array("after".utf8))
        #expect(harness.gateway.listeners().count == 1)
        #expect(throws: APIError.self) {
            try harness.gateway.addListener(ListenerSpec(
                listen: HostPort(host: "127.0.0.1", port: 0), upstream: HostPort(host: "127.0.0.1", port: echo.port)))
        }
    }
}
