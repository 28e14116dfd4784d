import Foundation
import SpliceCore
import SpliceTestSupport
import Testing

@testable import SpliceDataPlane

/// A mediator that echoes until it has seen `limit` bytes, then resets its connection.
func resettingMediator(after limit: Int) throws -> TestServer {
    try TestServer { socket in
        var seen = 0
        while seen < limit, let chunk = try? socket.receive(), !chunk.isEmpty {
            seen += chunk.count
            try? socket.send(chunk)
        }
        socket.reset()
    }
}

/// A recording server behind a gateway with the mediator "flaky" registered, which resets
/// after 1,000 bytes.
func flakyMediatorHarness() throws -> (Recorder, TestServer, RelayHarness) {
    let recorder = try Recorder()
    let mediator = try resettingMediator(after: 1000)
    let harness = try RelayHarness(upstreamPort: recorder.port)
    try harness.registerMediator("flaky", port: mediator.port)
    return (recorder, mediator, harness)
}

@Suite("Mediator failures and exec mediators", .serialized, .timeLimit(.minutes(3)))
struct MediatorFailureTests {
    @Test("a mediator reset under close_session ends the session, both sides closed")
    func resetClosesSession() async throws {
        let (recorder, mediator, harness) = try flakyMediatorHarness()
        defer { recorder.stop(); mediator.stop(); harness.close() }

        let (client, id) = try harness.openSession()
        _ = try harness.gateway.splice(session: id, HopRequest(target: .registered("flaky"), directions: .clientToServer))
        try client.send([UInt8](repeating: 1, count: 2000))
        #expect((try? client.receive()) ?? [] == [])
        #expect(eventually { harness.gateway.sessionCount == 0 })
        #expect(eventually { recorder.eofs == 1 })
        #expect(try harness.gateway.registeredMediator("flaky").inUse == 0)
    }

    @Test("a mediator reset under bypass drops the hop; later bytes flow directly, in order")
    func resetBypasses() async throws {
        let (recorder, mediator, harness) = try flakyMediatorHarness()
        defer { recorder.stop(); mediator.stop(); harness.close() }

        let (client, id) = try harness.openSession()
        try client.send(Array("direct-".utf8))
        #expect(eventually { recorder.count == 7 })
        _ = try harness.gateway.splice(session: id, HopRequest(target: .registered("flaky"), directions: .clientToServer,
                                                                onFailure: .bypass))
        try client.send([UInt8](repeating: 0x41, count: 1000))
        #expect(eventually { (try? harness.gateway.session(id).hops.isEmpty) == true })
        let tail = Array("-after-the-failure".utf8)
        try client.send(tail)
        client.shutdownWrite()
        #expect(eventually { recorder.eofs == 1 })
        let got = recorder.bytes
        // Raw prefix, then at most the 1000 bytes the mediator echoed before it reset, then the tail.
        #expect(got.starts(with: Array("direct-".utf8)))
        #expect(Array(got.suffix(tail.count)) == tail)
        #expect(got.count <= 7 + 1000 + tail.count)
        #expect(try harness.gateway.registeredMediator("flaky").inUse == 0)
    }

    @Test("exec mediator: stdbuf -o0 tr a-z A-Z transforms the live stream, both directions")
    func execTr() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        try harness.gateway.registerMediator(MediatorSpec(name: "tr", kind: .exec(["stdbuf", "-o0", "tr", "a-z", "A-Z"])))

        let (client, id) = try harness.openSession()
        try client.send(Array("before ".utf8))
        #expect(try client.receive(exactly: 7) == Array("before ".utf8))
        let hop = try harness.gateway.splice(session: id, HopRequest(target: .registered("tr"), directions: .clientToServer))
        #expect(hop.legs[.clientToServer]?.splicedAt == 7)
        try client.send(Array("during ".utf8))
        #expect(try client.receive(exactly: 7) == Array("DURING ".utf8))
        let report = try harness.gateway.removeHop(session: id, hop: hop.id)
        #expect(report.removedAt[.clientToServer] == 14)
        #expect(report.drained[.clientToServer] == 0)
        try client.send(Array("after".utf8))
        #expect(try client.receive(exactly: 5) == Array("after".utf8))
    }

    @Test("a buffering exec mediator (gzip -c): raw prefix, one gzip member of the window, raw tail")
    func execGzip() async throws {
        let recorder = try Recorder()
        defer { recorder.stop() }
        let harness = try RelayHarness(upstreamPort: recorder.port)
        defer { harness.close() }
        try harness.gateway.registerMediator(MediatorSpec(name: "gzip", kind: .exec(["gzip", "-c"])))

        let (client, id) = try harness.openSession()
        var stream = ByteStream(seed: 3)
        let prefix = Array("prefix-".utf8)
        let window = stream.next(300_000)
        let tail = Array("-tail".utf8)
        try client.send(prefix)
        #expect(eventually { recorder.count == prefix.count })
        let hop = try harness.gateway.splice(session: id, HopRequest(target: .registered("gzip"), directions: .clientToServer))
        try client.send(window)
        #expect(eventually { (try? harness.gateway.session(id).hops.first?.legs[.clientToServer]?.bytesIn) == UInt64(window.count) })
        // Sent once the removal has begun (the drain may still be under way): it must wait and
        // follow the member.
        let removal = ThreadTask { try harness.gateway.removeHop(session: id, hop: hop.id) }
        #expect(eventually { (try? harness.gateway.session(id).hops.first?.state) != .active })
        try client.send(tail)
        let report = try await removal.value
        #expect(report.removedAt[.clientToServer] == UInt64(prefix.count + window.count))
        client.shutdownWrite()
        #expect(eventually { recorder.eofs == 1 })

        let got = recorder.bytes
        #expect(got.starts(with: prefix))
        #expect(Array(got.suffix(tail.count)) == tail)
        let member = Array(got[prefix.count..<(got.count - tail.count)])
        #expect(UInt64(member.count) >= report.drained[.clientToServer] ?? .max)
        #expect(try gunzip(member) == window)
    }
}

/// Decompresses with the system's gzip, a process independent of the gateway.
func gunzip(_ bytes: [UInt8]) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-dc"]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    let writer = ThreadTask {
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    _ = writer
    guard process.terminationStatus == 0 else { throw FixtureError("gzip -dc exited \(process.terminationStatus)") }
    return Array(data)
}
