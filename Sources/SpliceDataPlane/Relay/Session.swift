import Logging
import NIOCore
import SpliceCore

/// One accepted client, its server connection and the paths between them.
///
/// Everything a session owns lives on one event loop, so none of it needs a lock; the API
/// reaches it through its `SessionRecord`.
final class Session {
    /// What the API sees of this session.
    let record: SessionRecord
    let eventLoop: EventLoop
    private let listenerStats: ListenerStats
    private let registry: SessionRegistry
    private let upstream: Upstream
    private var logger: Logger
    private(set) var client: Port?
    private(set) var server: Port?
    /// `[client_to_server, server_to_client]` once the server is connected.
    private(set) var paths: [DirectionPath] = []
    private var ending = false
    private let ended: EventLoopPromise<Void>

    init(record: SessionRecord, listenerStats: ListenerStats, registry: SessionRegistry,
         upstream: Upstream, logger: Logger) {
        self.record = record
        self.eventLoop = record.eventLoop
        self.listenerStats = listenerStats
        self.registry = registry
        self.upstream = upstream
        self.logger = logger
        self.logger[metadataKey: "session"] = "\(record.id)"
        self.logger[metadataKey: "client"] = "\(record.client)"
        self.ended = record.eventLoop.makePromise()
    }

    /// Takes the accepted client channel and dials the upstream; client reads stay held
    /// until the server is connected.
    func start(client channel: Channel, handler: PortHandler) {
        client = Port(role: .client, channel: channel, handler: handler, session: self)
        registry.insert(record)
        listenerStats.sessionOpened()
        logger.info("session opened", metadata: ["upstream": "\(upstream.address)"])
        let serverHandler = PortHandler()
        upstream.connect(on: eventLoop, handler: serverHandler).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                self.serverConnected(channel, handler: serverHandler)
            case .failure(let error):
                self.listenerStats.upstreamFailed()
                self.logger.warning("upstream unreachable", metadata: ["error": "\(error)"])
                self.end(.upstreamUnreachable)
            }
        }
    }

    private func serverConnected(_ channel: Channel, handler: PortHandler) {
        guard !ending, let client else {
            channel.close(promise: nil)
            return
        }
        let server = Port(role: .server, channel: channel, handler: handler, session: self)
        self.server = server
        record.update(server: channel.remoteAddress?.hostPortString ?? "\(upstream.address)")
        paths = [
            DirectionPath(direction: .clientToServer, links: [connect(client, to: server, .clientToServer)]),
            DirectionPath(direction: .serverToClient, links: [connect(server, to: client, .serverToClient)]),
        ]
        record.update(state: .open)
        guard channel.isActive else { return end(.serverError) }
        client.handler.resumeRead()
        server.handler.resumeRead()
    }

    private func connect(_ reader: Port, to writer: Port, _ direction: Direction) -> Link {
        let link = Link(direction: direction, reader: reader, writer: writer, offset: 0)
        reader.outLink = link
        writer.inLink = link
        return link
    }

    /// The path of one direction; only valid once connected.
    func path(_ direction: Direction) -> DirectionPath {
        paths[direction == .clientToServer ? 0 : 1]
    }

    // MARK: relay events

    func port(_ port: Port, received buffer: ByteBuffer) {
        guard let link = port.outLink else { return }
        if link.paused {
            link.held.append(buffer)
        } else {
            forward(buffer, over: link)
        }
    }

    /// Moves bytes one link further; counts them as delivered when they reach an endpoint.
    func forward(_ buffer: ByteBuffer, over link: Link) {
        let count = buffer.readableBytes
        link.offset &+= UInt64(count)
        link.writer.write(buffer)
        if link.writer.isEndpoint {
            record.counters.add(count, link.direction)
        }
    }

    func portInputClosed(_ port: Port) {
        port.eofReceived = true
        guard let link = port.outLink else { return }
        propagateEOF(over: link)
    }

    /// Half-closes the link's writer once everything queued for it is written.
    func propagateEOF(over link: Link) {
        let writer = link.writer
        guard !writer.outputClosing else { return }
        writer.outputClosing = true
        if writer.isEndpoint {
            path(link.direction).eofSeen = true
            record.update(state: .halfClosed)
        }
        writer.handler.closeOutputAfterFlush { result in
            switch result {
            case .success:
                guard writer.isEndpoint else { return }
                self.path(link.direction).finished = true
                if self.paths.allSatisfy(\.finished) { self.end(.completed) }
            case .failure(let error):
                self.logger.debug("half-close failed", metadata: ["port": "\(writer.role)", "error": "\(error)"])
                self.end(Self.failureReason(writer.role))
            }
        }
    }

    func port(_ port: Port, failed error: any Error) {
        logger.debug("channel error", metadata: ["port": "\(port.role)", "error": "\(error)"])
        end(Self.failureReason(port.role))
    }

    func portInactive(_ port: Port) {
        // A port whose peer sent EOF and whose output we shut is done, not failed: NIOPosix
        // closes such a channel entirely, which says nothing about the other direction.
        if port.eofReceived && port.outputClosing { return }
        end(Self.failureReason(port.role))
    }

    private static func failureReason(_ role: PortRole) -> CloseReason {
        role == .client ? .clientError : .serverError
    }

    // MARK: ending

    /// Ends the session at once; completes when its channels are closed.
    @discardableResult
    func kill(_ reason: CloseReason) -> EventLoopFuture<Void> {
        end(reason)
        return ended.futureResult
    }

    /// Closes every channel and leaves the registry; the first reason given is the one reported.
    func end(_ reason: CloseReason) {
        guard !ending else { return }
        ending = true
        record.update(state: .closing)
        let ports = [client, server].compactMap { $0 }
        let closed = ports.map { $0.channel.closeFuture }
        for port in ports {
            port.handler.closeNow()
        }
        registry.remove(record.id)
        listenerStats.sessionClosed()
        record.release()
        let bytes = record.counters.snapshot
        logger.info("session closed", metadata: [
            "reason": "\(reason.rawValue)",
            "bytes_client_to_server": "\(bytes.clientToServer)",
            "bytes_server_to_client": "\(bytes.serverToClient)",
        ])
        detach()
        EventLoopFuture.andAllComplete(closed, on: eventLoop).cascade(to: ended)
    }

    /// Breaks the session's reference cycles so that late channel events find nothing to act on.
    private func detach() {
        for path in paths {
            for link in path.links {
                link.reader.outLink = nil
                link.writer.inLink = nil
                link.held.removeAll()
            }
        }
        for port in [client, server].compactMap({ $0 }) {
            port.session = nil
        }
    }
}

@available(*, unavailable)
extension Session: Sendable {}
