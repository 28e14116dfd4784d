import SpliceCapture

/// Reads back the pcapng files `CaptureWriter` writes: enough of the format to check every
/// block's framing and every field the writer sets.
public struct PcapngReader {
    /// One block: its type and the bytes between its length fields.
    public struct Block {
        public let type: UInt32
        public let body: [UInt8]
    }

    /// An enhanced packet block's fields.
    public struct Packet {
        public let interface: UInt32
        public let timestamp: UInt64
        public let data: [UInt8]
        public let comments: [String]
    }

    /// An interface statistics block's counters.
    public struct Statistics {
        public let interface: UInt32
        public let received: UInt64?
        public let dropped: UInt64?
    }

    /// What was wrong with the file.
    public enum Failure: Error, CustomStringConvertible {
        case malformed(String)
        public var description: String { if case .malformed(let why) = self { why } else { "" } }
    }

    /// Every block, in file order.
    public private(set) var blocks: [Block] = []

    /// Splits a whole file into blocks, checking each one's framing.
    public init(_ bytes: [UInt8]) throws {
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
    public func interfaceNames() throws -> [String] {
        try blocks.filter { $0.type == Pcapng.BlockType.interfaceDescription }.map { block in
            guard Self.u16(block.body, 0) == TCPPacket.linkType else { throw Failure.malformed("link type") }
            let options = try Self.options(block.body, from: 8)
            guard let name = options.first(where: { $0.code == Pcapng.Option.ifName }) else {
                throw Failure.malformed("interface without a name")
            }
            return String(decoding: name.value, as: UTF8.self)
        }
    }

    /// The packets, with their comments.
    public func packets() throws -> [Packet] {
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

    /// The statistics blocks.
    public func statistics() throws -> [Statistics] {
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

    /// A block's options from `start`, checking they end with opt_endofopt.
    public static func options(_ body: [UInt8], from start: Int) throws -> [(code: UInt16, value: [UInt8])] {
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

    /// A little-endian 32-bit field.
    public static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    /// A little-endian 16-bit field.
    public static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }
}
