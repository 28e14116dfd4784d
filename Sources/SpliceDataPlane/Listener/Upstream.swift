import NIOCore
import SpliceCore
import SpliceIO

/// How a listener reaches its server: the address and the connect timeout.
struct Upstream: Sendable {
    /// The address as configured.
    let address: HostPort
    /// How long a dial may take.
    let connectTimeout: TimeAmount
    /// Whether the address is an IPv4 literal: the connected peer is then exactly the
    /// configured text, and a session need not ask the kernel for it.
    let isLiteral: Bool

    init(address: HostPort, connectTimeoutMs: Int) {
        self.address = address
        self.connectTimeout = .milliseconds(Int64(connectTimeoutMs))
        self.isLiteral = address.host.utf8.allSatisfy { $0 == UInt8(ascii: ".") || (0x30...0x39).contains($0) }
    }

    /// Dials the upstream on `loop`; `done` runs there once, after this returns.
    func connect(on loop: RelayLoop, _ done: @escaping (Result<RelaySocket, DialError>) -> Void) {
        let address = address
        RelayDialer.dial(host: address.host, port: address.port, timeout: connectTimeout, on: loop) { result in
            done(result.mapError { DialError(address, $0) })
        }
    }
}
