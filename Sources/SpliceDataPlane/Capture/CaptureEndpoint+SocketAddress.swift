import NIOCore
import SpliceCapture
#if canImport(Glibc)
import Glibc
#endif

extension CaptureEndpoint {
    /// The endpoint of an IPv4 or IPv6 socket address; nil for a Unix socket.
    init?(_ address: SocketAddress) {
        guard let port = address.port, let port = UInt16(exactly: port) else { return nil }
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            self.init(address: withUnsafeBytes(of: &raw) { Array($0) }, port: port)
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            self.init(address: withUnsafeBytes(of: &raw) { Array($0) }, port: port)
        case .unixDomainSocket:
            return nil
        }
    }
}
