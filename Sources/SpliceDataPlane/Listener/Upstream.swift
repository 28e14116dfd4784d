import NIOCore
import SpliceCore

/// How a listener reaches its server: the address and the connect timeout.
struct Upstream: Sendable {
    /// The address as configured.
    let address: HostPort
    /// How long a dial may take.
    let connectTimeout: TimeAmount

    init(address: HostPort, connectTimeoutMs: Int) {
        self.address = address
        self.connectTimeout = .milliseconds(Int64(connectTimeoutMs))
    }

    /// Dials the upstream on `eventLoop`, installing `handler` in the new channel.
    func connect(on eventLoop: EventLoop, handler: PortHandler) -> EventLoopFuture<Channel> {
        Dialer.connect(address, timeout: connectTimeout, on: eventLoop, handler: handler)
    }
}
