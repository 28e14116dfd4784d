import SpliceCapture

/// A raw IP packet holding TCP, taken apart with its checksums verified.
public struct DecodedSegment {
    /// Addresses (4 or 16 bytes), ports, header fields and payload.
    public let source: [UInt8]
    public let destination: [UInt8]
    public let sourcePort: UInt16
    public let destinationPort: UInt16
    public let sequence: UInt32
    public let acknowledgement: UInt32
    public let flags: TCPFlags
    public let window: UInt16
    public let payload: [UInt8]

    /// What was wrong with the packet.
    public enum Failure: Error { case malformed(String) }

    /// Takes a raw IP packet apart; throws on a bad length, protocol or checksum.
    public init(_ packet: [UInt8]) throws {
        guard let first = packet.first else { throw Failure.malformed("empty") }
        let ipHeader: Int
        let pseudo: [UInt8]
        let tcpLength: Int
        switch first >> 4 {
        case 4:
            ipHeader = Int(first & 0x0F) * 4
            let total = Int(Self.be16(packet, 2))
            guard total == packet.count, packet[9] == 6 else { throw Failure.malformed("IPv4 length or protocol") }
            guard Self.checksum([packet[0..<ipHeader]]) == 0 else { throw Failure.malformed("IPv4 header checksum") }
            source = Array(packet[12..<16])
            destination = Array(packet[16..<20])
            tcpLength = total - ipHeader
            pseudo = source + destination + [0, 6, UInt8(tcpLength >> 8), UInt8(tcpLength & 0xFF)]
        case 6:
            ipHeader = 40
            tcpLength = Int(Self.be16(packet, 4))
            guard tcpLength + 40 == packet.count, packet[6] == 6 else { throw Failure.malformed("IPv6 length or header") }
            source = Array(packet[8..<24])
            destination = Array(packet[24..<40])
            pseudo = source + destination + [0, 0, UInt8(tcpLength >> 8), UInt8(tcpLength & 0xFF), 0, 0, 0, 6]
        default:
            throw Failure.malformed("IP version \(first >> 4)")
        }
        guard packet.count <= 65535 else { throw Failure.malformed("packet over 65,535 bytes") }
        let tcp = Array(packet[ipHeader...])
        guard Self.checksum([pseudo[...], tcp[...]]) == 0 else { throw Failure.malformed("TCP checksum") }
        sourcePort = Self.be16(tcp, 0)
        destinationPort = Self.be16(tcp, 2)
        sequence = UInt32(Self.be16(tcp, 4)) << 16 | UInt32(Self.be16(tcp, 6))
        acknowledgement = UInt32(Self.be16(tcp, 8)) << 16 | UInt32(Self.be16(tcp, 10))
        flags = TCPFlags(rawValue: tcp[13])
        window = Self.be16(tcp, 14)
        payload = Array(tcp[(Int(tcp[12] >> 4) * 4)...])
    }

    /// The textbook RFC 1071 sum, big-endian words: independent of the writer's method.
    public static func checksum(_ pieces: [ArraySlice<UInt8>]) -> UInt16 {
        var bytes: [UInt8] = pieces.flatMap { $0 }
        if bytes.count % 2 == 1 { bytes.append(0) }
        var sum: UInt32 = 0
        for index in stride(from: 0, to: bytes.count, by: 2) {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            sum = (sum & 0xFFFF) + (sum >> 16)
        }
        return ~UInt16(sum)
    }

    /// A big-endian 16-bit field.
    public static func be16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }
}
