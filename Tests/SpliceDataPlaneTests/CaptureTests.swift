import Foundation
import SpliceCapture
import SpliceCore
import SpliceTestSupport
import Synchronization
import Testing

@testable import SpliceDataPlane

/// A capture reader in memory: takes what fits in `limit` bytes not yet read, like the admin
/// stream's buffer, and keeps all of it for the test to parse.
final class MemoryCaptureOutput: CaptureOutput {
    private struct State {
        var bytes: [UInt8] = []
        var finished = false
        var callbacks: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    var room: Int { state.withLock { max(0, limit - $0.bytes.count) } }
    func append(_ bytes: [UInt8]) { state.withLock { $0.bytes += bytes } }
    func finish() { state.withLock { $0.finished = true } }
    var isReleased: Bool { false }
    func onReaderGone(_ body: @escaping @Sendable () -> Void) { state.withLock { $0.callbacks.append(body) } }

    var finished: Bool { state.withLock { $0.finished } }
    var file: [UInt8] { state.withLock { $0.bytes } }
}

@Suite("Live capture over real sockets", .serialized, .timeLimit(.minutes(2)))
struct CaptureTests {
    /// Each point's bytes per side, reassembled by sequence number from the parsed file.
    func streams(_ file: [UInt8]) throws -> (names: [String], bytes: [String: [[UInt8]]], reader: PcapngReader) {
        let reader = try PcapngReader(file)
        let names = try reader.interfaceNames()
        var bytes: [String: [[UInt8]]] = [:]
        var initiatorPort: [String: UInt16] = [:]
        for packet in try reader.packets() {
            let segment = try DecodedSegment(packet.data)
            let name = names[Int(packet.interface)]
            if segment.flags == .syn { initiatorPort[name] = segment.sourcePort }
            let side = segment.sourcePort == initiatorPort[name] ? 0 : 1
            bytes[name, default: [[], []]][side] += segment.payload
        }
        return (names, bytes, reader)
    }

    /// Echoes `count` bytes through a session captured into `output`, checks the echo, runs
    /// `whileOpen` and half-closes; returns the bytes once the capture has ended.
    func echoCaptured(_ count: Int, seed: UInt64, into output: MemoryCaptureOutput,
                      whileOpen: (Gateway, SessionID, CaptureSnapshot) throws -> Void = { _, _, _ in }) async throws -> [UInt8] {
        let server = try Recorder(echo: true)
        defer { server.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }
        let (client, id) = try harness.openSession()
        let snapshot = try harness.gateway.startingCapture(session: id, request: CaptureRequest(), output: output).wait()
        var stream = ByteStream(seed: seed)
        let sent = stream.next(count)
        let echo = ThreadTask { try client.receive(exactly: sent.count) }
        try client.send(sent)
        #expect(try await echo.value == sent, "the session's bytes are whole")
        try whileOpen(harness.gateway, id, snapshot)
        client.shutdownWrite()
        #expect(eventually(timeout: 10) { output.finished })
        #expect(server.bytes == sent)
        return sent
    }

    @Test("a session's capture holds both legs' bytes exactly and ends with the session")
    func sessionCapture() async throws {
        let output = MemoryCaptureOutput(limit: 64 << 20)
        let sent = try await echoCaptured(3 << 20, seed: 13, into: output) { gateway, id, snapshot throws in
            #expect(try gateway.session(id).captures.map(\.id) == [snapshot.id])
        }
        let (names, bytes, reader) = try streams(output.file)
        #expect(names == ["client", "server"])
        #expect(bytes["client"] == [sent, sent])
        #expect(bytes["server"] == [sent, sent])
        #expect(try reader.statistics().map(\.dropped) == [0, 0])
    }

    @Test("a reader with no room loses packets, counted per interface, and the session's bytes are whole")
    func stalledReader() async throws {
        let output = MemoryCaptureOutput(limit: 0)
        _ = try await echoCaptured(8 << 20, seed: 14, into: output) { gateway, id, _ throws in
            #expect(try gateway.session(id).captures.first?.dropped ?? 0 > 0)
        }
        let reader = try PcapngReader(output.file)
        #expect(try reader.packets().isEmpty)
        let stats = try reader.statistics()
        #expect(stats.count == 2 && stats.allSatisfy { ($0.dropped ?? 0) > 0 && $0.dropped == $0.received })
    }

    @Test("a failover is a comment, and the server point is drawn again towards the replica")
    func failover() async throws {
        let primary = try Recorder(echo: true)
        defer { primary.stop() }
        let replica = try Recorder(echo: true)
        defer { replica.stop() }
        let (gateway, listener, group) = try replicatedGateway(primary: primary.port, replica: replica.port)
        defer { gateway.shutdown(); shutdownTestGroup(group) }
        let client = try TestSocket.connect(port: listener.spec.listen.port)
        // The listener's replica split is added after the session opens.
        #expect(eventually { gateway.sessions().sessions.first?.splits.count == 1 })
        let session = try #require(gateway.sessions().sessions.first)
        let output = MemoryCaptureOutput(limit: 16 << 20)
        _ = try gateway.startingCapture(session: session.id, request: CaptureRequest(), output: output).wait()
        try client.send(Array("before\n".utf8))
        #expect(try client.receive(exactly: 7) == Array("before\n".utf8))
        let split = try #require(session.splits.first?.id)
        _ = try gateway.failover(session: session.id, split: split)
        try client.send(Array("after\n".utf8))
        #expect(try client.receive(exactly: 6) == Array("after\n".utf8))
        client.shutdownWrite()
        #expect(eventually(timeout: 10) { output.finished })

        let reader = try PcapngReader(output.file)
        let names = try reader.interfaceNames()
        let packets = try reader.packets()
        #expect(packets.contains { $0.comments.contains { $0.hasPrefix("failed over to \(split)") } })
        let serverSYNs = try packets.filter { names[Int($0.interface)] == "server" }
            .map { try DecodedSegment($0.data) }.filter { $0.flags == .syn }
        #expect(serverSYNs.map(\.destinationPort) == [UInt16(primary.port), UInt16(replica.port)])
        let (_, bytes, _) = try streams(output.file)
        #expect(bytes["client"] == [Array("before\nafter\n".utf8), Array("before\nafter\n".utf8)])
    }
}
