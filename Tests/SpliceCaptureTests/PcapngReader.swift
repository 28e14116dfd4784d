import SpliceCapture

/// Reads back the pcapng files `CaptureWriter` writes: enough of the format to check every
/// block's framing and every field the writer sets.
struct PcapngReader {
    struct Block {
        let type: UInt32
        let body: [UInt8]
    }

    struct Packet {
        let interface: UInt32
        let timestamp: UInt64
        let data: [UInt8]
        let comments: [String]
    }

    struct Statistics {
        let interface: UInt32
        let received: UInt64?
        let dropped: UInt64?
    }

    enum Failure: Error, CustomStringConvertible {
        case malformed(String)
        var description: String { if case .malformed(let why) = self { why } else { "" } }
    }

    private(set) var blocks: [Block] = []

    init(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            guard offset + 12 <= bytes.count else { throw Failure.malformed("truncated block at \(offset)") }
            let type = Self.u32(bytes, offset)
            let length = Int(Self.u32(bytes, offset + 4))
            guard length % 4 == 0, length >= 12, offset + length <= bytes.count else {
                throw Failure.malformed("bad block length \(length) at \(offset)")
            }
            guard Self.u32(bytes, offset + length - 4) == UInt32(length) else {
                throw Failure.malformed("trailing length differs at \(offset)")
            }
            blocks.append(Block(type: type, body: Array(bytes[(offset + 8)..<(offset + length - 4)])))
            offset += length
        }
    }

    /// Interface names in order.
    func interfaceNames() throws -> [String] {
        try blocks.filter { $0.type == Pcapng.BlockType.interfaceDescription }.map { block in
            guard Self.u16(block.body, 0) == TCPPacket.linkType else { throw Failure.malformed("link type") }
            let options = try Self.options(block.body, from: 8)
            guard let name = options.first(where: { $0.code == Pcapng.Option.ifName }) else {
                throw Failure.malformed("interface without a name")
            }
            return String(decoding: name.value, as: UTF8.self)
        }
    }

    func packets() throws -> [Packet] {
        try blocks.filter { $0.type == Pcapng.BlockType.enhancedPacket }.map { block in
            let body = block.body
            let captured = Int(Self.u32(body, 12))
            guard Self.u32(body, 16) == UInt32(captured), 20 + captured <= body.count else {
                throw Failure.malformed("packet lengths")
            }
            let optionsStart = 20 + ((captured + 3) & ~3)
            let options = try Self.options(body, from: optionsStart)
            return Packet(interface: Self.u32(body, 0),
                          timestamp: UInt64(Self.u32(body, 4)) << 32 | UInt64(Self.u32(body, 8)),
                          data: Array(body[20..<(20 + captured)]),
                          comments: options.filter { $0.code == Pcapng.Option.comment }
                              .map { String(decoding: $0.value, as: UTF8.self) })
        }
    }

    func statistics() throws -> [Statistics] {
        try blocks.filter { $0.type == Pcapng.BlockType.interfaceStatistics }.map { block in
            let options = try Self.options(block.body, from: 12)
            let value = { (code: UInt16) -> UInt64? in
                options.first { $0.code == code }.map { option in
                    option.value.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                }
            }
            return Statistics(interface: Self.u32(block.body, 0), received: value(Pcapng.Option.isbIfReceived),
                              dropped: value(Pcapng.Option.isbIfDrop))
        }
    }

    static func options(_ body: [UInt8], from start: Int) throws -> [(code: UInt16, value: [UInt8])] {
        var options: [(code: UInt16, value: [UInt8])] = []
        var offset = start
        while offset < body.count {
            guard offset + 4 <= body.count else { throw Failure.malformed("truncated option") }
            let code = u16(body, offset)
            let length = Int(u16(body, offset + 2))
            if code == Pcapng.Option.endOfOptions {
                guard length == 0, offset + 4 == body.count else { throw Failure.malformed("opt_endofopt not last") }
                return options
            }
            guard offset + 4 + length <= body.count else { throw Failure.malformed("option overruns block") }
            options.append((code, Array(body[(offset + 4)..<(offset + 4 + length)])))
            offset += 4 + ((length + 3) & ~3)
        }
        guard options.isEmpty else { throw Failure.malformed("options without opt_endofopt") }
        return options
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }
}
