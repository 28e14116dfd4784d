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

    @Test("a session's capture holds both legs' bytes exactly and ends with the session")
    func sessionCapture() async throws {
        let server = try Recorder(echo: true)
        defer { server.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }
        let (client, id) = try harness.openSession()
        let output = MemoryCaptureOutput(limit: 64 << 20)
        let snapshot = try harness.gateway.startingCapture(session: id, request: CaptureRequest(), output: output).wait()
        #expect(try harness.gateway.session(id).captures.map(\.id) == [snapshot.id])
        var stream = ByteStream(seed: 13)
        let sent = stream.next(3 << 20)
        let echo = ThreadTask { try client.receive(exactly: sent.count) }
        try client.send(sent)
        #expect(try await echo.value == sent)
        client.shutdownWrite()
        #expect(eventually(timeout: 10) { output.finished })
        let (names, bytes, reader) = try streams(output.file)
        #expect(names == ["client", "server"])
        #expect(bytes["client"] == [sent, sent])
        #expect(bytes["server"] == [sent, sent])
        #expect(try reader.statistics().map(\.dropped) == [0, 0])
    }

    @Test("a reader with no room loses packets, counted per interface, and the session's bytes are whole")
    func stalledReader() async throws {
        let server = try Recorder(echo: true)
        defer { server.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }
        let (client, id) = try harness.openSession()
        let output = MemoryCaptureOutput(limit: 0)
        _ = try harness.gateway.startingCapture(session: id, request: CaptureRequest(), output: output).wait()
        var stream = ByteStream(seed: 14)
        let sent = stream.next(8 << 20)
        let echo = ThreadTask { try client.receive(exactly: sent.count) }
        try client.send(sent)
        #expect(try await echo.value == sent)
        #expect(try harness.gateway.session(id).captures.first?.dropped ?? 0 > 0)
        client.shutdownWrite()
        #expect(eventually(timeout: 10) { output.finished })
        let reader = try PcapngReader(output.file)
        #expect(try reader.packets().isEmpty)
        let stats = try reader.statistics()
        #expect(stats.count == 2 && stats.allSatisfy { ($0.dropped ?? 0) > 0 && $0.dropped == $0.received })
        #expect(server.bytes == sent)
    }
}
