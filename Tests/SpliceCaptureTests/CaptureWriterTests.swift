import SpliceCapture
import SpliceTestSupport
import Testing

@Suite("pcapng writer and TCP synthesizer")
struct CaptureWriterTests {
    let client = CaptureEndpoint(address: [127, 0, 0, 1], port: 40000)!
    let gateway = CaptureEndpoint(address: [127, 0, 0, 2], port: 7000)!
    let unlimited = Int.max

    /// Bytes 0, 1, 2, … of a given length, so a misplaced slice shows.
    func pattern(_ count: Int, seed: Int = 0) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31 &+ seed) ^ ($0 >> 8)) }
    }

    func decoded(_ file: [UInt8]) throws -> (PcapngReader, [(PcapngReader.Packet, DecodedSegment)]) {
        let reader = try PcapngReader(file)
        #expect(reader.blocks.first?.type == Pcapng.BlockType.sectionHeader)
        let packets = try reader.packets().map { ($0, try DecodedSegment($0.data)) }
        return (reader, packets)
    }

    @Test("a stream larger than one packet comes back whole, in order, with valid checksums")
    func largeStream() throws {
        var writer = CaptureWriter<Int>(application: "test", time: 1)
        writer.open(1, interface: "client", initiator: client, responder: gateway, offsets: (0, 0))
        var room = unlimited
        let up = pattern(200_001)
        let down = pattern(70_000, seed: 7)
        up.withUnsafeBytes { writer.send($0, from: .initiator, on: 1, time: 2, room: &room) }
        down.withUnsafeBytes { writer.send($0, from: .responder, on: 1, time: 3, room: &room) }
        writer.finish(from: .initiator, on: 1, time: 4, room: &room)
        writer.finish(from: .responder, on: 1, time: 4, room: &room)
        writer.close(time: 5)
        let (reader, packets) = try decoded(writer.take())
        #expect(try reader.interfaceNames() == ["client"])
        let segments = packets.map(\.1)
        #expect(segments.prefix(3).map(\.flags) == [.syn, [.syn, .ack], .ack])
        #expect(segments[0].sequence == 0 && segments[1].sequence == 0, "ISNs sit just before offset 0")
        let fromClient = segments.filter { $0.sourcePort == client.port }
        let fromGateway = segments.filter { $0.sourcePort == gateway.port }
        #expect(fromClient.flatMap(\.payload) == up)
        #expect(fromGateway.flatMap(\.payload) == down)
        #expect(segments.allSatisfy { $0.payload.count <= 65535 - 40 })
        // Sequence numbers are stream offsets + 1 and each data segment is acknowledged.
        var offset: UInt32 = 1
        for segment in fromClient where !segment.payload.isEmpty {
            #expect(segment.sequence == offset)
            offset += UInt32(segment.payload.count)
        }
        #expect(segments.contains { $0.sourcePort == gateway.port && $0.acknowledgement == UInt32(up.count + 1) })
        #expect(segments.filter { $0.flags.contains(.fin) }.count == 2)
        let stats = try reader.statistics()
        #expect(stats.count == 1 && stats[0].dropped == 0 && stats[0].received == UInt64(packets.count))
    }

    @Test("a capture that starts mid-stream numbers bytes by their stream offset")
    func midStream() throws {
        var writer = CaptureWriter<String>(application: "test", time: 1)
        writer.open("h", interface: "h1.in", initiator: client, responder: gateway, offsets: (1_000_000, 5))
        var room = unlimited
        [UInt8]("abc".utf8).withUnsafeBytes { writer.send($0, from: .initiator, on: "h", time: 2, room: &room) }
        let segments = try decoded(writer.take()).1.map(\.1)
        #expect(segments[0].flags == .syn && segments[0].sequence == 1_000_000)
        #expect(segments[1].sequence == 5 && segments[1].acknowledgement == 1_000_001)
        #expect(segments[3].sequence == 1_000_001 && segments[3].payload == Array("abc".utf8))
    }

    @Test("IPv6 and mixed families are carried as IPv6 with valid checksums")
    func ipv6() throws {
        var writer = CaptureWriter<Int>(application: "test", time: 1)
        let server = CaptureEndpoint(address: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1], port: 80)!
        writer.open(1, interface: "server", initiator: client, responder: server, offsets: (0, 0))
        var room = unlimited
        let bytes = pattern(140_001)
        bytes.withUnsafeBytes { writer.send($0, from: .initiator, on: 1, time: 2, room: &room) }
        writer.reset(from: .responder, on: 1, time: 3, room: &room)
        let segments = try decoded(writer.take()).1.map(\.1)
        #expect(segments.allSatisfy { $0.source.count == 16 })
        #expect(segments[0].source == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1])
        #expect(segments.flatMap(\.payload) == bytes)
        #expect(segments.allSatisfy { $0.payload.count <= 65535 - 60 })
        #expect(segments.last?.flags == [.rst, .ack])
    }

    @Test("comments go on the next packet of their side, and survive a dropped one")
    func comments() throws {
        var writer = CaptureWriter<Int>(application: "test", time: 1)
        writer.open(1, interface: "client", initiator: client, responder: gateway, offsets: (0, 0))
        var room = unlimited
        writer.handshake(1, time: 1, room: &room)
        writer.comment("h1 spliced at 3", from: .initiator, on: 1)
        var none = 0
        [UInt8]("xyz".utf8).withUnsafeBytes { writer.send($0, from: .initiator, on: 1, time: 2, room: &none) }
        [UInt8]("abc".utf8).withUnsafeBytes { writer.send($0, from: .initiator, on: 1, time: 3, room: &room) }
        writer.close(time: 4)
        let (reader, packets) = try decoded(writer.take())
        let commented = packets.filter { !$0.0.comments.isEmpty }
        #expect(commented.count == 1)
        #expect(commented.first?.0.comments == ["h1 spliced at 3"])
        #expect(commented.first?.1.payload == Array("abc".utf8))
        let stats = try reader.statistics()
        #expect(stats.first?.dropped == 2, "the data segment and its ACK")
        #expect(stats.first?.received == UInt64(packets.count) + 2)
    }

    @Test("a reader without room loses packets but never interface or statistics blocks")
    func drops() throws {
        var writer = CaptureWriter<Int>(application: "test", time: 1)
        writer.open(1, interface: "client", initiator: client, responder: gateway, offsets: (0, 0))
        writer.open(2, interface: "server", initiator: client, responder: gateway, offsets: (0, 0))
        var room = 0
        pattern(10).withUnsafeBytes { writer.send($0, from: .initiator, on: 2, time: 2, room: &room) }
        writer.close(time: 3)
        let reader = try PcapngReader(writer.take())
        #expect(try reader.interfaceNames() == ["client", "server"])
        #expect(try reader.packets().isEmpty)
        let stats = try reader.statistics()
        #expect(stats.map(\.interface) == [0, 1])
        #expect(stats.map(\.dropped) == [0, 5], "SYN, SYN-ACK, ACK, data, ACK")
    }

    @Test("checksums match the textbook sum for every length and alignment")
    func checksum() {
        for length in 0..<40 {
            let bytes = pattern(length, seed: length)
            var sum = InternetChecksum()
            sum.add(bytes)
            let native = sum.value
            let stored = withUnsafeBytes(of: native) { [$0[0], $0[1]] }
            // Appending the stored checksum makes the whole sum to zero (odd lengths padded).
            let padded = length % 2 == 0 ? bytes : bytes + [0]
            #expect(DecodedSegment.checksum([(padded + stored)[...]]) == 0, "length \(length)")
        }
    }
}
