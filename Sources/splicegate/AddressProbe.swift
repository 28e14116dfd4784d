#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// Says why an address cannot be listened on, for a start-up error: libmicrohttpd reports
/// only that it did not start (and logs "Failed to bind to port 0", since the port is in
/// the socket address it was given, not in its port argument).
enum AddressProbe {
    /// The bind error for `host:port` in words (`address already in use`), or nil when a
    /// bind works now.
    static func bindFailure(host: String, port: Int) -> String? {
        let literal = host == "localhost" ? "127.0.0.1" : host
        guard let address = try? SocketAddress(ipAddress: literal, port: port) else {
            return "not an IP address"
        }
        let fd = socket(Int32(address.protocol.rawValue), Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)).lowercased() }
        defer { close(fd) }
        // As the admin server binds: address reuse on, so only a live listener conflicts.
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = address.withSockAddr { bind(fd, $0, socklen_t($1)) }
        return result == 0 ? nil : String(cString: strerror(errno)).lowercased()
    }
}
