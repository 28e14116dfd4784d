import NIOCore
import NIOPosix
import SpliceCore

/// Opens one leg of a hop: a TCP connection to the mediator, or a mediator process, as a
/// channel carrying `handler`, on the session's event loop.
enum MediatorConnector {
    /// How long dialing a TCP mediator may take before the splice fails with 502.
    static let connectTimeout = TimeAmount.seconds(5)

    /// The open leg: its channel and, for `exec`, the process behind it.
    struct Opened: Sendable {
        let channel: Channel
        let process: ExecProcess?
    }

    /// Opens a leg; `proxyAddresses` are the session's client and server, sent first as a
    /// PROXY v2 header when the mediator asks for one.
    static func open(_ spec: MediatorSpec, on eventLoop: EventLoop, handler: PortHandler,
                     proxyAddresses: (client: SocketAddress?, server: SocketAddress?)) -> EventLoopFuture<Opened> {
        switch spec.kind {
        case .tcp(let address):
            let connected = Dialer.connect(address, timeout: connectTimeout, on: eventLoop, handler: handler)
            return connected.flatMapErrorThrowing { error in
                throw APIError.badGateway("mediator \(spec.name) unreachable: \(error)")
            }.flatMap { channel in
                guard spec.proxyProtocol else { return eventLoop.makeSucceededFuture(Opened(channel: channel, process: nil)) }
                let header = ProxyHeader.encode(source: proxyAddresses.client, destination: proxyAddresses.server)
                return channel.writeAndFlush(channel.allocator.buffer(bytes: header))
                    .map { Opened(channel: channel, process: nil) }
            }
        case .exec(let argv):
            let process: ExecProcess
            do {
                process = try ExecProcess.spawn(argv)
            } catch {
                return eventLoop.makeFailedFuture(error)
            }
            let bound = NIOLoopBound(handler, eventLoop: eventLoop)
            return NIOPipeBootstrap(group: eventLoop)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
                }
                .takingOwnershipOfDescriptors(input: process.output, output: process.input)
                .map { Opened(channel: $0, process: process) }
                .flatMapErrorThrowing { error in
                    process.terminate()
                    throw APIError.badGateway("exec mediator \(spec.name) failed to start: \(error)")
                }
        }
    }
}
