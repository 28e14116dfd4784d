import Foundation
import SpliceSamples
import SpliceTestSupport
import Testing

/// How many bytes a sender thread got into its socket so far.
private final class Progress: @unchecked Sendable {
    // @unchecked: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value = 0

    func add(_ count: Int) {
        lock.lock()
        value += count
        lock.unlock()
    }

    var sent: Int {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// Reads until EOF, undoing `invert`, pausing `pause` microseconds after each read;
/// returns the digest of the original bytes.
private func readInverted(_ socket: TestSocket, pause: UInt32 = 0) throws -> Digest {
    var digest = Digest()
    while true {
        let chunk = try socket.receive(max: 32 * 1024)
        if chunk.isEmpty { return digest }
        digest.update(chunk.map { ~$0 })
        if pause > 0 { usleep(pause) }
    }
}

@Suite("Sample mediators: half-close and back-pressure", .serialized, .timeLimit(.minutes(2)))
struct FlowControlTests {
    @Test("after shutdownWrite the client still reads every transformed byte, then EOF")
    func halfCloseSlowReader() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let server = try harness.start(.invert)
        let total = 16 << 20
        let (sent, received) = try await ThreadTask { () -> (String, Digest) in
            let socket = try TestSocket.connect(port: server.localPort, receiveBuffer: 32 * 1024)
            defer { socket.close() }
            let sender = Background { () -> String in
                var stream = ByteStream(seed: 5)
                var digest = Digest()
                for _ in 0..<(total / (256 * 1024)) {
                    let chunk = stream.next(256 * 1024)
                    digest.update(chunk)
                    try socket.send(chunk)
                }
                socket.shutdownWrite()
                return digest.hex()
            }
            // Slow throughout, so the EOF reaches a server whose output is backed up; its
            // output close must wait for what is queued (TRAPS #1).
            let received = try readInverted(socket, pause: 1_000)
            return (try sender.join(), received)
        }.value
        #expect(received.count == total)
        #expect(received.hex() == sent)
    }

    @Test("a client that does not read stops the server reading: bounded, then lossless")
    func boundedBuffering() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let server = try harness.start(.invert)
        let total = 64 << 20
        let progress = Progress()
        let (stalledAt, sent, received) = try await ThreadTask { () -> (Int, String, Digest) in
            let socket = try TestSocket.connect(port: server.localPort, timeout: 60, receiveBuffer: 64 * 1024)
            socket.setOption(SO_SNDBUF, 64 * 1024)
            defer { socket.close() }
            let sender = Background { () -> String in
                var stream = ByteStream(seed: 9)
                var digest = Digest()
                for _ in 0..<(total / 65536) {
                    let chunk = stream.next(65536)
                    digest.update(chunk)
                    try socket.send(chunk)
                    progress.add(chunk.count)
                }
                socket.shutdownWrite()
                return digest.hex()
            }
            // Wait until the sender has been stuck for a second (or has sent everything).
            var last = -1
            var still = 0
            while still < 5 {
                usleep(200_000)
                let now = progress.sent
                still = now == last ? still + 1 : 0
                last = now
            }
            let received = try readInverted(socket)
            return (last, try sender.join(), received)
        }.value
        #expect(stalledAt < 16 << 20, "the server took \(stalledAt) bytes from a client that read none")
        #expect(received.count == total)
        #expect(received.hex() == sent)
    }
}
