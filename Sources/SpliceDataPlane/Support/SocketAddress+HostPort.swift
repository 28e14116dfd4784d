import NIOCore

extension SocketAddress {
    /// `host:port` as operators write it (`127.0.0.1:5000`, `[::1]:80`), or the path of a
    /// UNIX socket.
    var hostPortString: String {
        guard let ip = ipAddress, let port else { return pathname ?? description }
        return ip.utf8.contains(UInt8(ascii: ":")) ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
