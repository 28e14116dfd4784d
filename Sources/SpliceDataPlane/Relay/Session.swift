import Logging
import NIOCore
import SpliceCore
import SpliceIO

/// One accepted client, its server connection and the paths between them.
///
/// Everything a session owns lives on one event loop, so none of it needs a lock; the API
/// reaches it through its `SessionRecord`, to which it publishes its shape after each
/// change (`publish`). What to do when something happens is `machine`'s to decide; the
/// session gathers the facts and carries the decision out on its sockets.
final class Session {
    /// What the API sees of this session.
    let record: SessionRecord
    let eventLoop: EventLoop
    /// The relay loop that owns every socket of the session.
    let loop: RelayLoop
    /// What the listener's sessions share.
    let context: SessionContext
    private(set) var client: Port?
    var server: Port?
    /// `[client_to_server, server_to_client]` once the server is connected.
    /// (Two fields rather than an array: one allocation fewer per session.)
    private(set) var paths: (clientToServer: DirectionPath, serverToClient: DirectionPath)?
    /// Spliced hops in stack order, client side first.
    var hops: [Hop] = []
    /// Recipients of copies, in the order they were added (dropped ones stay listed).
    var splits: [Split] = []
    /// The lifecycle: phase, finished directions, reconfigurations under way.
    var machine = SessionMachine()
    /// The server the session talks to now, as published.
    var serverAddress: String
    /// The ports the session closed as it ended, for `kill` to wait on (their close
    /// futures are made only when somebody waits: most sessions end with no one asking).
    private var endedPorts: [Port] = []
    /// Live captures recording the session; nil while nobody captures (see Session+Capture).
    var capture: SessionCapture?

    init(record: SessionRecord, context: SessionContext, loop: RelayLoop) {
        self.record = record
        self.eventLoop = loop
        self.loop = loop
        self.context = context
        self.serverAddress = record.server
    }

    /// Whether the session has ended (its sockets are closing or closed).
    var ending: Bool { machine.isEnding }
    /// Whether the session's sockets may be read (templates are in, no handoff under way).
    var readsEnabled: Bool { machine.readsEnabled && !handoff.isHeld }
    /// The session's part in a handoff to or from another process: while it is held
    /// (frozen here, or adopted and waiting for the acknowledgement) nothing is read, its
    /// sockets are not polled and an end waits for the thaw (see Session+Handoff).
    var handoff = SessionHandoffState<[(port: Port, bytes: [UInt8])]>()

    /// Publishes the session's shape for the API: called once after every change to it.
    func publish() {
        record.publish(SessionView(server: serverAddress, state: machine.state,
                                   hops: hops.map(\.view), splits: splits.map(\.view),
                                   captures: capture?.sinks ?? []))
    }

    /// The gateway's live sessions and id source.
    var registry: SessionRegistry { context.registry }
    /// The registry whose use counts this session's hops hold.
    var mediators: MediatorRegistry { context.mediators }
    /// Where the session reports what happens to it.
    var events: EventHub { context.events }
    private var listenerStats: ListenerStats { context.stats }
    private var upstream: Upstream { context.upstream }
    /// What the listener splices and splits into the session before its first byte.
    private var templates: (mediators: [HopRequest], splits: [SplitRequest]) { context.templates }

    /// The listener's logger with this session's id and client as metadata, attached only
    /// when a line is logged (an idle session should cost little, and so should a busy one).
    var logger: SessionLogger {
        SessionLogger(base: context.logger, record: record)
    }

    /// Takes the accepted client socket and dials the upstream; client reads stay held
    /// until the server is connected.
    func start(client socket: RelaySocket) {
        client = Port(role: .client, socket: socket, session: self, written: record.toClient)
        registry.insert(record)
        listenerStats.sessionOpened()
        logger.info("session opened", metadata: ["upstream": "\(upstream.address)"])
        events.publish(.sessionOpened(record.snapshot))
        upstream.connect(on: loop) { result in
            switch result {
            case .success(let socket):
                self.serverConnected(socket)
            case .failure(let error):
                guard let reason = self.machine.upstreamFailed() else { return }
                self.listenerStats.upstreamFailed()
                self.logger.warning("upstream unreachable", metadata: ["error": "\(error)"])
                self.end(reason)
            }
        }
    }

    private func serverConnected(_ socket: RelaySocket) {
        let action = machine.serverConnected(socketOpen: socket.isOpen)
        guard action != .discard, let client else {
            socket.close()
            return
        }
        let server = Port(role: .server, socket: socket, session: self, written: record.toServer)
        self.server = server
        // The configured address names a literal upstream already.
        if !upstream.isLiteral { serverAddress = socket.remoteAddressText ?? serverAddress }
        paths = (
            DirectionPath(direction: .clientToServer, from: client, to: server),
            DirectionPath(direction: .serverToClient, from: server, to: client)
        )
        publish()
        switch action {
        case .end(let reason): end(reason)
        case .applyTemplates:
            captureServerConnected()
            applyTemplates(templates.mediators[...]) {
                self.applySplitTemplates(self.templates.splits[...])
            }
        case .discard: break
        }
    }

    /// Wires two connected ports as the session's endpoints, directly (a session taken over
    /// from a predecessor process; see Session+Handoff).
    func adoptPorts(client: Port, server: Port) {
        self.client = client
        self.server = server
        paths = (
            DirectionPath(direction: .clientToServer, from: client, to: server),
            DirectionPath(direction: .serverToClient, from: server, to: client)
        )
    }

    /// The path of one direction; only valid once connected.
    func path(_ direction: Direction) -> DirectionPath {
        guard let paths else { preconditionFailure("session \(record.id) has no paths before its server is connected") }
        return direction == .clientToServer ? paths.clientToServer : paths.serverToClient
    }

    /// Both paths, or none before the server is connected.
    var allPaths: [DirectionPath] {
        paths.map { [$0.clientToServer, $0.serverToClient] } ?? []
    }

    // MARK: relay events

    /// Bytes read from `link`'s reader: on they go, or wait (copied) while the link is paused.
    func forward(_ bytes: UnsafeRawBufferPointer, from link: Link) {
        guard link.carry(bytes) else { return }
        if !link.writer.taps.isEmpty {
            copy(bytes, to: link.writer.taps)
        }
        if capture != nil { capturePassed(bytes, over: link) }
    }

    /// Moves bytes one link further, and copies them to the writer's taps.
    func forward(_ bytes: UnsafeRawBufferPointer, over link: Link) {
        link.pass(bytes)
        if !link.writer.taps.isEmpty {
            copy(bytes, to: link.writer.taps)
        }
        if capture != nil { capturePassed(bytes, over: link) }
    }

    /// Moves bytes that were held (a paused link, a replica's early output) one link further.
    func forward(_ buffer: ByteBuffer, over link: Link) {
        buffer.withUnsafeReadableBytes { forward($0, over: link) }
    }

    func portInputClosed(_ port: Port) {
        port.eofReceived = true
        if capture != nil { captureInputClosed(port) }
        let leg = hopLeg(of: port)
        let facts = SessionMachine.InputClosed(
            port: kind(of: port, draining: leg?.leg.draining ?? false), outputClosing: port.outputClosing,
            clientSentEOF: client?.eofReceived ?? true, hasReplica: failoverReplica != nil,
            outLink: port.outLink.map { $0.paused ? .paused : .flowing } ?? .none)
        switch machine.inputClosed(facts) {
        case .finishDrain:
            if let (hop, leg) = leg { finishDrain(leg, of: hop) }
        case .mediatorFailed(let why):
            if let (hop, _) = leg { mediatorFailed(hop, why) }
        case .promoteReplica(let why):
            if let replica = failoverReplica { promote(replica, because: why) }
        case .propagateEOF:
            if let link = port.outLink { propagateEOF(over: link) }
        case .hold:
            break
        }
    }

    /// What the machine needs to know of a port's kind.
    private func kind(of port: Port, draining: Bool = false) -> SessionMachine.PortKind {
        switch port.role {
        case .client: .client
        case .server: .server
        case .hop: .hop(draining: draining)
        case .split: .split
        }
    }

    /// The hop and leg a mediator port belongs to.
    private func hopLeg(of port: Port) -> (hop: Hop, leg: HopLeg)? {
        guard case .hop(let id, let direction) = port.role, let hop = hop(id), let leg = hop.legs[direction] else {
            return nil
        }
        return (hop, leg)
    }

    /// Half-closes the link's writer once everything queued for it is written.
    func propagateEOF(over link: Link) {
        let writer = link.writer
        guard !writer.outputClosing else { return }
        writer.outputClosing = true
        if capture != nil { captureOutputClosing(writer) }
        if writer.isEndpoint {
            machine.eofSentToEndpoint()
            publish()
            closeTaps(of: writer)
        }
        writer.socket.closeOutputAfterFlush { result in
            switch result {
            case .success:
                guard writer.isEndpoint else { return }
                if let reason = self.machine.endpointFinished(link.direction) { self.end(reason) }
            case .failure(let error):
                self.port(writer, failed: error)
            }
        }
    }

    func port(_ port: Port, failed error: any Error) {
        if !ending { logger.debug("socket error", metadata: ["port": "\(port.role)", "error": "\(error)"]) }
        portBroke(port, "\(error)")
    }

    /// The port's socket closed. The relay core closes a socket on its own only after a
    /// failure (already reported); one the session closed has left the session first.
    func portInactive(_ port: Port) {
        portBroke(port, "connection closed", cleanClose: port.eofReceived && port.outputClosing)
    }

    /// A socket failed: a mediator's failure is its hop's policy to handle, a recipient's
    /// drops its split, an endpoint's ends the session unless a replica takes over.
    private func portBroke(_ port: Port, _ why: @autoclosure () -> String, cleanClose: Bool = false) {
        switch machine.portBroke(kind(of: port), why(), cleanClose: cleanClose, hasReplica: failoverReplica != nil) {
        case .end(let reason): end(reason)
        case .promoteReplica(let because):
            if let replica = failoverReplica { promote(replica, because: because) }
        case .mediatorFailed(let why):
            if let (hop, _) = hopLeg(of: port) { mediatorFailed(hop, why) }
        case .dropSplit(let reason):
            if let split = split(of: port) { drop(split, reason: reason) }
        case .ignore:
            break
        }
    }

    /// Every channel the session owns: endpoints, mediator legs, recipients still attached.
    var allPorts: [Port] {
        var ports: [Port] = []
        ports.reserveCapacity(2 + 2 * (hops.count + splits.count))
        if let client { ports.append(client) }
        if let server { ports.append(server) }
        for hop in hops { ports.append(contentsOf: hop.legs.values.lazy.map(\.port)) }
        for split in splits where split.state != .dropped { ports.append(contentsOf: split.legs.values.lazy.map(\.port)) }
        return ports
    }

    /// A hop of this session by id.
    func hop(_ id: HopID) -> Hop? {
        hops.first { $0.id == id }
    }

    // MARK: ending

    /// Ends the session at once; completes when its channels are closed.
    @discardableResult
    func kill(_ reason: CloseReason) -> EventLoopFuture<Void> {
        // Its descriptors are on their way to a successor: not ours to close now.
        if let refusal = handoffChangeRefusal { return eventLoop.makeFailedFuture(refusal) }
        end(reason)
        guard !endedPorts.isEmpty else { return eventLoop.makeSucceededVoidFuture() }
        return EventLoopFuture.andAllComplete(endedPorts.map(\.socket.closeFuture), on: eventLoop)
    }

    /// Closes every channel and leaves the registry; the first reason given is the one reported.
    func end(_ reason: CloseReason) {
        switch handoff.end(reason) {
        case .end: break
        case .deferred, .ignore: return
        }
        guard machine.end(reason) else { return }
        captureEnded(reason)
        let ports = allPorts
        for hop in hops {
            hop.drainTimer?.cancel()
            hop.removal?.fail(APIError.conflict("session \(record.id) ended (\(reason.rawValue)) before the drain finished"))
            hop.removal = nil
            hop.legs.values.forEach { $0.process?.terminate() }
            hop.lease?.release()
        }
        // Detach before closing: a close fires channel events synchronously, and they must
        // find nothing left to act on.
        detach()
        for port in ports {
            switch SessionMachine.closeMode(of: kind(of: port), endingFor: reason) {
            case .afterFlush: port.socket.closeAfterFlush()
            case .reset: port.socket.reset()
            case .now: port.socket.close()
            }
        }
        registry.remove(record.id)
        listenerStats.sessionClosed()
        record.release()
        let bytes = record.bytes
        listenerStats.sessionEnded(reason, bytes: bytes)
        events.publish(.sessionClosed(record.snapshot, reason: reason))
        logger.info("session closed", metadata: [
            "reason": "\(reason.rawValue)",
            "bytes_client_to_server": "\(bytes.clientToServer)",
            "bytes_server_to_client": "\(bytes.serverToClient)",
        ])
        endedPorts = ports
    }

    /// Breaks the session's reference cycles so that late channel events find nothing to act on.
    private func detach() {
        if let paths {
            paths.clientToServer.detachAll()
            paths.serverToClient.detachAll()
        }
        for port in allPorts {
            port.session = nil
            port.taps = []
            port.tapped = nil
        }
        hops = []
        publish()
    }
}

extension Session {
    /// The gateway's metrics, for reconfiguration events.
    var metrics: GatewayMetrics { listenerStats.metrics }
}

@available(*, unavailable)
extension Session: Sendable {}
