import NIOCore
import SpliceCapture
import SpliceCore
import SpliceIO

/// The captures recording one session, as its event loop sees them.
///
/// The session holds one only while somebody captures it, so the relay's hooks cost one
/// nil check otherwise.
final class SessionCapture {
    /// Captures recording the session, in the order they joined.
    private(set) var sinks: [CaptureSink] = []
    /// The legs' addresses, read once the server is connected.
    private var legs: Legs?
    /// The server port the `server` point was drawn for, and its generation (failover
    /// replaces it).
    private var serverPort: ObjectIdentifier?
    private var serverGeneration = 0

    /// The addresses the edge points are drawn with.
    struct Legs {
        let client: CaptureEndpoint
        let listener: CaptureEndpoint
        let gateway: CaptureEndpoint
        let server: CaptureEndpoint
    }

    /// Adds a capture; false if it was already there.
    func add(_ sink: CaptureSink) -> Bool {
        guard !sinks.contains(where: { $0 === sink }) else { return false }
        sinks.append(sink)
        return true
    }

    /// Drops captures whose reader left or which were closed; true when none is left.
    func prune() -> Bool {
        sinks.removeAll { !$0.isActive }
        return sinks.isEmpty
    }

    /// Reads the legs' addresses (once the server is connected) and opens every point
    /// known so far on every capture.
    func connected(_ session: Session) {
        guard legs == nil, let client = session.client?.socket as? RelaySocket,
              let server = session.server?.socket as? RelaySocket,
              let clientAddress = client.remoteAddress.flatMap(CaptureEndpoint.init),
              let listenerAddress = client.localAddress.flatMap(CaptureEndpoint.init),
              let gatewayAddress = server.localAddress.flatMap(CaptureEndpoint.init),
              let serverAddress = server.remoteAddress.flatMap(CaptureEndpoint.init)
        else { return }
        legs = Legs(client: clientAddress, listener: listenerAddress, gateway: gatewayAddress, server: serverAddress)
        serverPort = session.server.map(ObjectIdentifier.init)
        for sink in sinks { openAll(on: sink, session) }
    }

    /// Opens the points that exist now on one capture.
    func openAll(on sink: CaptureSink, _ session: Session) {
        guard legs != nil else { return }
        ensureOpen(.client, on: sink, session)
        ensureOpen(.server, on: sink, session)
        for hop in session.hops {
            ensureOpen(.hopIn(hop.id), on: sink, session)
            ensureOpen(.hopOut(hop.id), on: sink, session)
        }
    }

    // MARK: relay events

    /// Bytes passed over `link`: seen leaving its reader and entering its writer.
    func passed(_ bytes: UnsafeRawBufferPointer, over link: Link, _ session: Session) {
        guard legs != nil else { return }
        let side = link.direction.sender
        for sink in sinks where sink.records(link.direction) {
            if let point = CapturePoint.reading(link.reader) { send(bytes, side, at: point, on: sink, session) }
            if let point = CapturePoint.writing(link.writer), point != CapturePoint.reading(link.reader) {
                send(bytes, side, at: point, on: sink, session)
            }
        }
    }

    /// `port`'s peer sent EOF: a FIN on the point its reads are seen at (for a hop, on both
    /// its points: its input was half-closed before it could end its output).
    func inputClosed(_ port: Port, _ session: Session) {
        guard legs != nil, let point = CapturePoint.reading(port), let direction = direction(of: port, reading: true) else { return }
        for sink in sinks {
            fin(direction.sender, at: point, on: sink, session)
            if case .hopOut(let hop) = point { fin(direction.sender, at: .hopIn(hop), on: sink, session) }
        }
    }

    /// The gateway half-closes `port`'s output: a FIN on the point its writes are seen at.
    func outputClosing(_ port: Port, _ session: Session) {
        guard legs != nil, let point = CapturePoint.writing(port), let direction = direction(of: port, reading: false) else { return }
        for sink in sinks { fin(direction.sender, at: point, on: sink, session) }
    }

    /// The session ended: every point is closed on every capture.
    func ended(_ reason: CloseReason, _ session: Session) {
        for sink in sinks {
            sink.sessionEnded(session.record.id, cut: reason.cutsTheStream)
        }
        sinks = []
    }

    // MARK: private

    private func send(_ bytes: UnsafeRawBufferPointer, _ side: ConversationSide, at point: CapturePoint,
                      on sink: CaptureSink, _ session: Session) {
        guard sink.records(point) else { return }
        // The bytes were counted already: the sender's stream stood `bytes.count` earlier.
        ensureOpen(point, on: sink, session, sending: (side, UInt64(bytes.count)))
        sink.send(bytes, from: side, on: key(point, session))
    }

    private func fin(_ side: ConversationSide, at point: CapturePoint, on sink: CaptureSink, _ session: Session) {
        guard sink.records(point) else { return }
        sink.finish(from: side, on: key(point, session))
    }

    private func key(_ point: CapturePoint, _ session: Session) -> CaptureKey {
        CaptureKey(session: session.record.id, point: point, generation: generation(point))
    }

    private func generation(_ point: CapturePoint) -> Int {
        point == .server ? serverGeneration : 0
    }

    /// Opens a point's connection on a capture if it is not open yet, with sequence numbers
    /// at the point's current stream offsets.
    private func ensureOpen(_ point: CapturePoint, on sink: CaptureSink, _ session: Session,
                            sending: (side: ConversationSide, count: UInt64)? = nil) {
        guard self.legs != nil, sink.records(point) else { return }
        if point == .server, let server = session.server, ObjectIdentifier(server) != serverPort {
            replaceServer(server, session)
        }
        guard let legs else { return }
        let key = key(point, session)
        guard !sink.contains(key) else { return }
        var offsets = self.offsets(point, session)
        if let sending {
            if sending.side == .initiator { offsets.0 &-= sending.count } else { offsets.1 &-= sending.count }
        }
        switch point {
        case .client:
            sink.open(key, initiator: legs.client, responder: legs.listener, offsets: offsets, syntheticPort: false)
        case .server:
            sink.open(key, initiator: legs.gateway, responder: legs.server, offsets: offsets, syntheticPort: false)
        case .hopIn, .hopOut:
            sink.open(key, initiator: legs.client, responder: legs.server, offsets: offsets, syntheticPort: true)
        }
    }

    /// A replica took over: the old server connection ends with a reset and the `server`
    /// point is drawn again between the gateway and the replica.
    private func replaceServer(_ server: Port, _ session: Session) {
        let old = key(.server, session)
        for sink in sinks where sink.contains(old) { sink.forget(old, resetBy: .responder) }
        serverGeneration += 1
        serverPort = ObjectIdentifier(server)
        if let legs, let socket = server.socket as? RelaySocket,
           let gateway = socket.localAddress.flatMap(CaptureEndpoint.init),
           let replica = socket.remoteAddress.flatMap(CaptureEndpoint.init) {
            self.legs = Legs(client: legs.client, listener: legs.listener, gateway: gateway, server: replica)
        }
    }

    /// The point's stream offsets now: (client → server, server → client).
    private func offsets(_ point: CapturePoint, _ session: Session) -> (UInt64, UInt64) {
        switch point {
        case .client:
            return (session.client?.read.value ?? 0, session.client?.written.value ?? 0)
        case .server:
            return (session.server?.written.value ?? 0, session.server?.read.value ?? 0)
        case .hopIn(let id):
            let legs = session.hop(id)?.legs
            return (legs?[.clientToServer]?.port.inLink?.offset ?? 0, legs?[.serverToClient]?.port.inLink?.offset ?? 0)
        case .hopOut(let id):
            let legs = session.hop(id)?.legs
            return (legs?[.clientToServer]?.port.outLink?.offset ?? 0, legs?[.serverToClient]?.port.outLink?.offset ?? 0)
        }
    }

    /// The direction a port's reads (or writes) carry.
    private func direction(of port: Port, reading: Bool) -> Direction? {
        switch port.role {
        case .client: reading ? .clientToServer : .serverToClient
        case .server: reading ? .serverToClient : .clientToServer
        case .hop(_, let direction): direction
        case .split: nil
        }
    }
}

@available(*, unavailable)
extension SessionCapture: Sendable {}
