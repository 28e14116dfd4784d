import NIOCore

/// PROXY protocol v2 header (haproxy.org proxy-protocol.txt §2.2), telling a mediator the
/// session's real client and server addresses before any stream byte.
enum ProxyHeader {
    private static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// The header for a TCP stream from `source` to `destination`; `LOCAL` with no
    /// addresses when they are not of one IP family.
    static func encode(source: SocketAddress?, destination: SocketAddress?) -> [UInt8] {
        var header = signature
        switch (source, destination) {
        case (.v4(let src), .v4(let dst)):
            header += [0x21, 0x11, 0x00, 12]
            header += withUnsafeBytes(of: src.address.sin_addr.s_addr) { Array($0) }
            header += withUnsafeBytes(of: dst.address.sin_addr.s_addr) { Array($0) }
            header += port(src.address.sin_port) + port(dst.address.sin_port)
        case (.v6(let src), .v6(let dst)):
            header += [0x21, 0x21, 0x00, 36]
            header += withUnsafeBytes(of: src.address.sin6_addr) { Array($0) }
            header += withUnsafeBytes(of: dst.address.sin6_addr) { Array($0) }
            header += port(src.address.sin6_port) + port(dst.address.sin6_port)
        default:
            header += [0x20, 0x00, 0x00, 0x00]
        }
        return header
    }

    /// A port already in network byte order, as its two bytes.
    private static func port(_ networkOrder: UInt16) -> [UInt8] {
        withUnsafeBytes(of: networkOrder) { Array($0) }
    }
}
