/// Writes pcapng blocks (draft-ietf-opsawg-pcapng), little-endian, one section per file.
///
/// Each function appends one whole block to a buffer, so a stream of blocks can be cut
/// between any two of them and a reader never sees half a block.
public enum Pcapng {
    /// Block types.
    public enum BlockType {
        public static let sectionHeader: UInt32 = 0x0A0D_0D0A
        public static let interfaceDescription: UInt32 = 1
        public static let interfaceStatistics: UInt32 = 5
        public static let enhancedPacket: UInt32 = 6
    }

    /// Option codes used here.
    public enum Option {
        public static let endOfOptions: UInt16 = 0
        public static let comment: UInt16 = 1
        public static let shbUserApplication: UInt16 = 4
        public static let ifName: UInt16 = 2
        public static let ifDescription: UInt16 = 3
        public static let ifTimestampResolution: UInt16 = 9
        public static let isbStartTime: UInt16 = 2
        public static let isbEndTime: UInt16 = 3
        public static let isbIfReceived: UInt16 = 4
        public static let isbIfDrop: UInt16 = 5
    }

    /// The byte-order magic of a section header.
    public static let byteOrderMagic: UInt32 = 0x1A2B_3C4D

    /// A timestamp in microseconds since the epoch (the default `if_tsresol`).
    public typealias Microseconds = UInt64

    /// Appends the section header block that starts a file.
    public static func appendSectionHeader(application: String, to buffer: inout [UInt8]) {
        block(BlockType.sectionHeader, to: &buffer) { body in
            body.appendLittleEndian(byteOrderMagic)
            body.appendLittleEndian(UInt16(1))
            body.appendLittleEndian(UInt16(0))
            body.appendLittleEndian(Int64(-1))  // section length unknown: the file is a stream
            option(Option.shbUserApplication, Array(application.utf8), to: &body)
            endOfOptions(&body)
        }
    }

    /// Appends an interface description block; interfaces are numbered in the order their
    /// blocks appear.
    public static func appendInterfaceDescription(name: String, description: String? = nil, linkType: UInt16,
                                                  to buffer: inout [UInt8]) {
        block(BlockType.interfaceDescription, to: &buffer) { body in
            body.appendLittleEndian(linkType)
            body.appendLittleEndian(UInt16(0))
            body.appendLittleEndian(UInt32(0))  // snap length: none
            option(Option.ifName, Array(name.utf8), to: &body)
            if let description { option(Option.ifDescription, Array(description.utf8), to: &body) }
            option(Option.ifTimestampResolution, [6], to: &body)
            endOfOptions(&body)
        }
    }

    /// Appends an enhanced packet block holding the packet `packet` appends, with comments.
    public static func appendEnhancedPacket(interface: UInt32, timestamp: Microseconds, comments: [String] = [],
                                            to buffer: inout [UInt8], packet: (inout [UInt8]) -> Void) {
        block(BlockType.enhancedPacket, to: &buffer) { body in
            let header = body.count
            body.appendLittleEndian(interface)
            body.appendLittleEndian(UInt32(truncatingIfNeeded: timestamp >> 32))
            body.appendLittleEndian(UInt32(truncatingIfNeeded: timestamp))
            body.appendLittleEndian(UInt32(0))
            body.appendLittleEndian(UInt32(0))
            let start = body.count
            packet(&body)
            let length = UInt32(body.count - start)
            body.storeLittleEndian(length, at: header + 12)
            body.storeLittleEndian(length, at: header + 16)
            pad(&body)
            if !comments.isEmpty {
                for comment in comments { option(Option.comment, Array(comment.utf8), to: &body) }
                endOfOptions(&body)
            }
        }
    }

    /// Appends an interface statistics block: packets seen and dropped on one interface.
    public static func appendInterfaceStatistics(interface: UInt32, timestamp: Microseconds, start: Microseconds,
                                                 received: UInt64, dropped: UInt64, to buffer: inout [UInt8]) {
        block(BlockType.interfaceStatistics, to: &buffer) { body in
            body.appendLittleEndian(interface)
            body.appendLittleEndian(UInt32(truncatingIfNeeded: timestamp >> 32))
            body.appendLittleEndian(UInt32(truncatingIfNeeded: timestamp))
            option(Option.isbStartTime, timestampValue(start), to: &body)
            option(Option.isbEndTime, timestampValue(timestamp), to: &body)
            option(Option.isbIfReceived, littleEndian(received), to: &body)
            option(Option.isbIfDrop, littleEndian(dropped), to: &body)
            endOfOptions(&body)
        }
    }

    /// The size of an enhanced packet block for a packet of `length` bytes with `comments`.
    public static func enhancedPacketSize(packet length: Int, comments: [String] = []) -> Int {
        let options = comments.isEmpty ? 0 : comments.reduce(4) { $0 + 4 + (($1.utf8.count + 3) & ~3) }
        return 28 + ((length + 3) & ~3) + options + 4
    }

    // MARK: pieces

    /// Block type, total length, body, total length again.
    private static func block(_ type: UInt32, to buffer: inout [UInt8], body: (inout [UInt8]) -> Void) {
        precondition(buffer.count % 4 == 0, "pcapng blocks start on a 32-bit boundary")
        let start = buffer.count
        buffer.appendLittleEndian(type)
        buffer.appendLittleEndian(UInt32(0))
        body(&buffer)
        let total = UInt32(buffer.count - start + 4)
        buffer.storeLittleEndian(total, at: start + 4)
        buffer.appendLittleEndian(total)
    }

    private static func option(_ code: UInt16, _ value: [UInt8], to buffer: inout [UInt8]) {
        buffer.appendLittleEndian(code)
        buffer.appendLittleEndian(UInt16(value.count))
        buffer.append(contentsOf: value)
        pad(&buffer)
    }

    private static func endOfOptions(_ buffer: inout [UInt8]) {
        buffer.append(contentsOf: [0, 0, 0, 0])
    }

    private static func pad(_ buffer: inout [UInt8]) {
        while buffer.count % 4 != 0 { buffer.append(0) }
    }

    /// A timestamp as ISB options hold it: high 32 bits, then low 32 bits.
    private static func timestampValue(_ value: Microseconds) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(UInt32(truncatingIfNeeded: value >> 32))
        bytes.appendLittleEndian(UInt32(truncatingIfNeeded: value))
        return bytes
    }

    private static func littleEndian(_ value: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(value)
        return bytes
    }
}
