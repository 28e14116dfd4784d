import Foundation
import SpliceSamples
import SpliceTestSupport
import Testing

/// Reference mappings written independently of the server's tables.
private func expected(_ name: String, _ bytes: [UInt8]) -> [UInt8] {
    switch name {
    case "upper": Array(String(decoding: bytes, as: UTF8.self).uppercased().utf8)
    case "lower": Array(String(decoding: bytes, as: UTF8.self).lowercased().utf8)
    case "rot13":
        bytes.map { byte in
            let scalar = Character(UnicodeScalar(byte))
            guard scalar.isASCII, scalar.isLetter else { return byte }
            let base: UInt8 = scalar.isUppercase ? 65 : 97
            return (byte - base + 13) % 26 + base
        }
    case "invert": bytes.map { 255 - $0 }
    default: bytes
    }
}

@Suite("Byte-wise sample transforms over real sockets", .timeLimit(.minutes(2)))
struct ByteTransformTests {
    @Test("text through each transform comes back exactly transformed",
          arguments: ["identity", "upper", "lower", "rot13", "invert"])
    func text(name: String) async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let server = try harness.start(name)
        let input = asciiText(6 * 1024)
        let output = try await ThreadTask { try exchange(port: server.localPort, input) }.value
        #expect(output == expected(name, input))
    }

    @Test("binary bytes: invert flips every bit, case transforms leave non-ASCII alone",
          arguments: ["identity", "upper", "lower", "rot13", "invert"])
    func binary(name: String) async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let server = try harness.start(name)
        var stream = ByteStream(seed: 11)
        let input = (0...255).map { UInt8($0) } + stream.next(8 * 1024)
        let output = try await ThreadTask { try exchange(port: server.localPort, input) }.value
        let want: [UInt8] = switch name {
        case "invert": input.map { ~$0 }
        case "identity": input
        // String case mapping would touch non-ASCII bytes, so map ASCII letters by hand.
        case "upper": input.map { (97...122).contains($0) ? $0 - 32 : $0 }
        case "lower": input.map { (65...90).contains($0) ? $0 + 32 : $0 }
        default: input.map { $0 < 128 ? expected("rot13", [$0])[0] : $0 }
        }
        #expect(output == want)
    }

    @Test("rot13 twice and invert twice give back the original")
    func involutions() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let rot = try harness.start("rot13")
        let invert = try harness.start("invert")
        let input = asciiText(4096, seed: 3)
        let rotTwice = try await ThreadTask { try exchange(port: rot.localPort, exchange(port: rot.localPort, input)) }.value
        let invertTwice = try await ThreadTask {
            try exchange(port: invert.localPort, exchange(port: invert.localPort, input))
        }.value
        #expect(rotTwice == input)
        #expect(invertTwice == input)
    }

    @Test("delay=300 holds every byte at least 300 ms and keeps the order")
    func delay() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let server = try harness.start("delay=300")
        let parts = (0..<3).map { asciiText(2048, seed: UInt64($0 + 20)) }
        let (received, firstByteAfter) = try await ThreadTask { () -> ([UInt8], Double) in
            let socket = try TestSocket.connect(port: server.localPort)
            defer { socket.close() }
            let start = Date()
            for part in parts {
                try socket.send(part)
                usleep(50_000)
            }
            var received = try socket.receive()
            let firstByteAfter = Date().timeIntervalSince(start)
            socket.shutdownWrite()
            received += try socket.receiveAll()
            return (received, firstByteAfter)
        }.value
        #expect(received == parts.flatMap { $0 })
        #expect(firstByteAfter >= 0.3)
    }

    @Test("delay=0 forwards at once")
    func noDelay() async throws {
        let harness = SampleHarness()
        defer { harness.close() }
        let server = try harness.start("delay=0")
        let input = asciiText(3000)
        let output = try await ThreadTask { try exchange(port: server.localPort, input) }.value
        #expect(output == input)
    }
}
