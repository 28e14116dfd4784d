import NIOCore
import SpliceCore
import SpliceIO

/// Opens one leg of a hop: a TCP connection to the mediator, or a mediator process's
/// pipes, as a relay socket on the session's loop.
enum MediatorConnector {
    /// How long dialing a TCP mediator may take before the splice fails with 502.
    static let connectTimeout = TimeAmount.seconds(5)

    /// The open leg: its socket and, for `exec`, the process behind it.
    struct Opened {
        let socket: RelaySocket
        let process: ExecProcess?
    }

    /// Opens a leg; `proxyAddresses` are the session's client and server, sent first as a
    /// PROXY v2 header when the mediator asks for one.
    static func open(_ spec: MediatorSpec, on loop: RelayLoop,
                     proxyAddresses: (client: SocketAddress?, server: SocketAddress?)) -> EventLoopFuture<Opened> {
        switch spec.kind {
        case .tcp(let address):
            let connected = RelayDialer.connect(host: address.host, port: address.port, timeout: connectTimeout, on: loop)
            return connected.assumeIsolated().flatMapErrorThrowing { error in
                throw APIError.badGateway("mediator \(spec.name) unreachable: \(DialError(address, error))")
            }.map { socket in
                if spec.proxyProtocol {
                    let header = ProxyHeader.encode(source: proxyAddresses.client, destination: proxyAddresses.server)
                    header.withUnsafeBytes { socket.write($0) }
                }
                return Opened(socket: socket, process: nil)
            }.nonisolated()
        case .exec(let argv):
            let process: ExecProcess
            do {
                process = try ExecProcess.spawn(argv, on: loop)
            } catch {
                return loop.makeFailedFuture(error)
            }
            guard let socket = RelaySocket(pipesReading: process.output, writing: process.input, loop: loop) else {
                process.terminate()
                return loop.makeFailedFuture(APIError.badGateway("exec mediator \(spec.name) failed to start: cannot poll its pipes"))
            }
            return loop.makeSucceededIsolatedFuture(Opened(socket: socket, process: process)).nonisolated()
        }
    }
}
