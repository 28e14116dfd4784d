import Foundation
import SpliceSamples
import SpliceTestSupport
import Testing

@Suite("deflate and inflate sample mediators", .timeLimit(.minutes(2)))
struct CompressionTests {
    @Test("4 MiB of random bytes through deflate then inflate come back exact")
    func roundTrip() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let deflate = try harness.start(.deflate)
        let inflate = try harness.start(.inflate)
        let total = 4 << 20
        let (sent, received, compressed) = try await ThreadTask { () -> (String, Digest, Int) in
            let client = try TestSocket.connect(port: deflate.localPort)
            let middle = try TestSocket.connect(port: inflate.localPort)
            defer { client.close(); middle.close() }
            let copy = pipe(from: client, to: middle)
            let sender = Background { () -> String in
                var stream = ByteStream(seed: 42)
                var digest = Digest()
                for _ in 0..<(total / 65536) {
                    let chunk = stream.next(65536)
                    digest.update(chunk)
                    try client.send(chunk)
                }
                client.shutdownWrite()
                return digest.hex()
            }
            var received = Digest()
            while true {
                let chunk = try middle.receive()
                if chunk.isEmpty { break }
                received.update(chunk)
            }
            return try (sender.join(), received, copy.join())
        }.value
        #expect(received.count == total)
        #expect(received.hex() == sent)
        #expect(compressed > total)  // random bytes do not compress; stored blocks add a little
    }

    @Test("text compresses, and deflate's output decodes to the original")
    func compressesText() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let deflate = try harness.start(.deflate)
        let inflate = try harness.start(.inflate)
        let input = Array(String(repeating: "splice me into a live session; ", count: 32 * 1024).utf8)
        let (compressed, output) = try await ThreadTask { () -> ([UInt8], [UInt8]) in
            let compressed = try exchange(port: deflate.localPort, input)
            return (compressed, try exchange(port: inflate.localPort, compressed))
        }.value
        #expect(compressed.count < input.count / 20)
        #expect(output == input)
    }

    @Test("deflate output flows before EOF: 1 KiB in, decodable bytes out, nothing closed")
    func syncFlush() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let deflate = try harness.start(.deflate)
        let inflate = try harness.start(.inflate)
        let input = asciiText(1024)
        let (early, decoded, eof) = try await ThreadTask { () -> ([UInt8], [UInt8], Bool) in
            let client = try TestSocket.connect(port: deflate.localPort, timeout: 10)
            let middle = try TestSocket.connect(port: inflate.localPort, timeout: 10)
            defer { client.close(); middle.close() }
            try client.send(input)
            let early = try client.receive()
            try middle.send(early)
            // Forward whatever else the flush produced while reading the decoded bytes back.
            let copy = pipe(from: client, to: middle)
            let decoded = try middle.receive(exactly: input.count)
            client.shutdownWrite()
            _ = try copy.join()
            return (early, decoded, try middle.receiveAll().isEmpty)
        }.value
        #expect(!early.isEmpty)
        #expect(decoded == input)
        #expect(eof)
    }

    @Test("garbage into inflate closes that connection; the server keeps serving")
    func garbage() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let deflate = try harness.start(.deflate)
        let inflate = try harness.start(.inflate)
        let ended = try await ThreadTask { () -> Bool in
            let socket = try TestSocket.connect(port: inflate.localPort, timeout: 10)
            defer { socket.close() }
            // 0xFF starts a final block of the reserved type 3: never valid deflate.
            try socket.send([UInt8](repeating: 0xFF, count: 1024))
            let reply = try? socket.receiveAll()
            return reply == nil || reply == []
        }.value
        #expect(ended)

        let input = Array("still serving\n".utf8)
        let output = try await ThreadTask {
            try exchange(port: inflate.localPort, exchange(port: deflate.localPort, input))
        }.value
        #expect(output == input)
    }

    @Test("two deflate streams back to back inflate to both inputs")
    func concatenatedStreams() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let deflate = try harness.start(.deflate)
        let inflate = try harness.start(.inflate)
        let first = asciiText(5000, seed: 1)
        let second = asciiText(7000, seed: 2)
        let output = try await ThreadTask {
            let joined = try exchange(port: deflate.localPort, first) + exchange(port: deflate.localPort, second)
            return try exchange(port: inflate.localPort, joined)
        }.value
        #expect(output == first + second)
    }
}
