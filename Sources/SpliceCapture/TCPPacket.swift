/// Renders a `TCPSegment` as an IPv4 or IPv6 packet with correct checksums (link type RAW,
/// so no link-layer header).
public enum TCPPacket {
    /// The pcapng link type of the packets: raw IP, version taken from the first nibble.
    public static let linkType: UInt16 = 101

    /// The length of the IP packet for `payload` bytes.
    public static func length(payload: Int, ipv6: Bool) -> Int {
        (ipv6 ? 40 : 20) + 20 + payload
    }

    /// Appends the packet: `segment` sent from `source` to `destination` with `payload`.
    /// Both endpoints must be of one family.
    public static func append(_ segment: TCPSegment, from source: CaptureEndpoint, to destination: CaptureEndpoint,
                              payload: UnsafeRawBufferPointer, to buffer: inout [UInt8]) {
        precondition(source.isIPv6 == destination.isIPv6, "a TCP connection needs one address family")
        let tcpLength = 20 + payload.count
        let ipStart = buffer.count
        if source.isIPv6 {
            buffer.append(contentsOf: [0x60, 0, 0, 0])
            buffer.appendBigEndian(UInt16(tcpLength))
            buffer.append(contentsOf: [6, 64])
            buffer.append(contentsOf: source.address)
            buffer.append(contentsOf: destination.address)
        } else {
            buffer.append(contentsOf: [0x45, 0])
            buffer.appendBigEndian(UInt16(20 + tcpLength))
            buffer.append(contentsOf: [0, 0, 0x40, 0, 64, 6, 0, 0])
            buffer.append(contentsOf: source.address)
            buffer.append(contentsOf: destination.address)
            var header = InternetChecksum()
            buffer.withUnsafeBytes { header.add(UnsafeRawBufferPointer(rebasing: $0[ipStart..<ipStart + 20])) }
            buffer.storeNative(header.value, at: ipStart + 10)
        }
        let tcpStart = buffer.count
        buffer.appendBigEndian(source.port)
        buffer.appendBigEndian(destination.port)
        buffer.appendBigEndian(segment.sequence)
        buffer.appendBigEndian(segment.acknowledgement)
        buffer.append(contentsOf: [5 << 4, segment.flags.rawValue])
        buffer.appendBigEndian(TCPConversation.window)
        buffer.append(contentsOf: [0, 0, 0, 0])
        buffer.append(contentsOf: payload)
        var checksum = InternetChecksum()
        var pseudo = source.address + destination.address
        if source.isIPv6 {
            pseudo.appendBigEndian(UInt32(tcpLength))
            pseudo.append(contentsOf: [0, 0, 0, 6])
        } else {
            pseudo.append(contentsOf: [0, 6])
            pseudo.appendBigEndian(UInt16(tcpLength))
        }
        checksum.add(pseudo)
        buffer.withUnsafeBytes { checksum.add(UnsafeRawBufferPointer(rebasing: $0[tcpStart...])) }
        buffer.storeNative(checksum.value, at: tcpStart + 16)
    }
}

extension [UInt8] {
    /// Appends an integer in network byte order.
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    /// Appends an integer in little-endian order (pcapng is written little-endian).
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Stores a checksum as summed (host order) at `index`.
    mutating func storeNative(_ value: UInt16, at index: Int) {
        Swift.withUnsafeBytes(of: value) { bytes in
            self[index] = bytes[0]
            self[index + 1] = bytes[1]
        }
    }

    /// Overwrites four bytes at `index` with a little-endian `UInt32`.
    mutating func storeLittleEndian(_ value: UInt32, at index: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { bytes in
            for offset in 0..<4 { self[index + offset] = bytes[offset] }
        }
    }
}
