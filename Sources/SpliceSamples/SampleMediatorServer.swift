import NIOCore
import NIOPosix
import Synchronization

/// A TCP server that applies one `SampleTransform` to every connection it accepts: a
/// mediator to try splicing with, no code needed.
///
/// Each connection is an independent stream filter: bytes are transformed and written as
/// they arrive, the input's EOF becomes the output's EOF, and a peer that does not read
/// makes the server stop reading.
public final class SampleMediatorServer: Sendable {
    /// The transform every connection applies.
    public let transform: SampleTransform
    /// The port the server listens on (the bound one when started with port 0).
    public let localPort: Int

    private let channel: any Channel
    private let connections: ConnectionSet

    private init(transform: SampleTransform, channel: any Channel, connections: ConnectionSet) {
        self.transform = transform
        self.channel = channel
        self.connections = connections
        self.localPort = channel.localAddress?.port ?? 0
    }

    /// Starts serving `transform` on `host:port` (port 0 binds an ephemeral port).
    public static func start(transform: SampleTransform, host: String, port: Int,
                             group: any EventLoopGroup) throws -> SampleMediatorServer {
        let connections = ConnectionSet()
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    let handler = SampleMediatorHandler(filter: try transform.makeFilter(),
                                                        holdTime: transform.holdTime)
                    try child.pipeline.syncOperations.addHandler(handler)
                    connections.insert(child)
                }
            }
            .bind(host: host, port: port)
            .wait()
        return SampleMediatorServer(transform: transform, channel: channel, connections: connections)
    }

    /// Stops accepting and closes every open connection; returns once all are closed.
    /// Blocks: call it from outside the event loops.
    public func close() {
        try? channel.close().wait()
        for child in connections.closeAll() {
            try? child.close().wait()
        }
    }
}

/// The open connections of one server, so `close()` can end them.
private final class ConnectionSet: Sendable {
    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// Tracks `channel` until it closes; one arriving after `closeAll` is closed at once.
    func insert(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        let accepted = state.withLock { state in
            guard !state.closed else { return false }
            state.open[key] = channel
            return true
        }
        guard accepted else { return channel.close(promise: nil) }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLock { _ = $0.open.removeValue(forKey: key) }
        }
    }

    /// Every connection still open; later ones are refused.
    func closeAll() -> [any Channel] {
        state.withLock { state in
            state.closed = true
            defer { state.open = [:] }
            return Array(state.open.values)
        }
    }
}
