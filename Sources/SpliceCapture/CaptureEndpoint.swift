/// One end of a synthesized TCP connection: an IPv4 or IPv6 address and a port.
public struct CaptureEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// The address in network order: 4 bytes for IPv4, 16 for IPv6.
    public let address: [UInt8]
    /// The TCP port.
    public let port: UInt16

    /// An endpoint from a 4- or 16-byte address; nil for any other length.
    public init?(address: [UInt8], port: UInt16) {
        guard address.count == 4 || address.count == 16 else { return nil }
        self.address = address
        self.port = port
    }

    /// Whether the address is IPv6.
    public var isIPv6: Bool { address.count == 16 }

    /// The same endpoint as IPv6 (an IPv4 address becomes `::ffff:a.b.c.d`), for a
    /// connection whose other end is IPv6.
    public var asIPv6: CaptureEndpoint {
        guard !isIPv6 else { return self }
        return CaptureEndpoint(unchecked: Array(repeating: 0, count: 10) + [0xFF, 0xFF] + address, port: port)
    }

    /// The endpoint with another port.
    public func with(port: UInt16) -> CaptureEndpoint {
        CaptureEndpoint(unchecked: address, port: port)
    }

    private init(unchecked address: [UInt8], port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String {
        if isIPv6 {
            let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16) }
            return "[\(groups.joined(separator: ":"))]:\(port)"
        }
        return address.map(String.init).joined(separator: ".") + ":\(port)"
    }
}
