import NIOCore

/// The relay's foot in one channel: reports reads, EOF, writability and errors to its
/// `Port`, and holds `read()` back while the port's outgoing link may not forward.
///
/// Back-pressure is nothing but this: a read the link cannot take is not issued, so the
/// bytes wait in the kernel and TCP slows the sender (the GlueHandler pattern).
final class PortHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The port this handler serves, until the channel closes.
    ///
    /// The port holds this handler strongly (it writes through it), so this is a reference
    /// cycle that also keeps the port's channel, its pipeline and its pooled receive buffers
    /// alive: ~4 KB per channel, ~8 KB per finished session (issue 11). It is broken in
    /// `handlerRemoved`, the last event a closed channel delivers, whichever way the session
    /// let go of the port (ended, hop removed, split removed, failed over).
    var port: Port?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Whether the port was told that the channel went inactive (see `handlerRemoved`).
    private var inactiveSeen = false
    /// Input the port cannot act on yet, in arrival order, for `deliverEarlyInput()`.
    ///
    /// Holding `read()` back does not hold back a peer's last bytes and EOF: NIOPosix reads
    /// everything up to the EOF as soon as the kernel reports it. Before the port exists (a
    /// mediator or recipient still being wired in), or while its session still dials the
    /// server or splices its templates, those would otherwise be lost.
    private var early: [EarlyInput] = []

    private enum EarlyInput {
        case bytes(ByteBuffer)
        case eof
    }

    init() {}

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel can be closed without ever having been active: NIO's ServerBootstrap
        // closes an accepted client whose listener closed while the client's initializer
        // (which starts its session) ran on another event loop. No `channelInactive` comes
        // then, and without this the session would wait for its client for ever.
        if !inactiveSeen { port?.inactive() }
        self.context = nil
        port = nil
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard early.isEmpty, let port, port.takesInput else { return early.append(.bytes(buffer)) }
        port.received(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard early.isEmpty else { return }
        port?.readComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            guard early.isEmpty, let port, port.takesInput else { return early.append(.eof) }
            port.inputClosed()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Hands the port, in order, the input that came before it could take any; the session
    /// calls this once the port is wired in.
    func deliverEarlyInput() {
        guard !early.isEmpty, let port, port.takesInput else { return }
        let input = early
        early = []
        for event in input {
            switch event {
            case .bytes(let buffer): port.received(buffer)
            case .eof: port.inputClosed()
            }
        }
        port.readComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { port?.becameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        port?.failed(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactiveSeen = true
        port?.inactive()
        context.fireChannelInactive()
    }

    // MARK: outbound

    func read(context: ChannelHandlerContext) {
        if port?.mayRead ?? false {
            context.read()
        } else {
            pendingRead = true
        }
    }

    /// Issues the read that was held back, if any, once the port may read again.
    func resumeRead() {
        guard pendingRead, let context, port?.mayRead ?? false else { return }
        pendingRead = false
        context.read()
    }

    /// Whether the channel can take more writes without growing past its high-water mark.
    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Queues bytes for the peer; `flush()` sends them.
    func write(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    /// Sends what `write` queued.
    func flush() {
        context?.flush()
    }

    /// Half-closes the channel's output after every queued byte has been written.
    ///
    /// An output close with writes still queued can fail them (TRAPS #1: NIOPosix turns it
    /// into a full close when input is already shut), so the close waits for an empty
    /// flushed write, which completes only after all earlier writes have.
    func closeOutputAfterFlush(_ done: @escaping (Result<Void, any Error>) -> Void) {
        guard let context else { return done(.success(())) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).assumeIsolated().flatMap {
            channel.close(mode: .output)
        }.whenComplete { result in
            switch result {
            case .success:
                done(.success(()))
            case .failure(let error as ChannelError) where error == .outputClosed || error == .alreadyClosed:
                // Already shut: nothing queued is left to lose.
                done(.success(()))
            case .failure(let error):
                done(.failure(error))
            }
        }
    }

    /// Closes the channel entirely once everything queued has been written.
    func closeAfterFlush() {
        guard let context else { return }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Closes the channel entirely, failing anything still queued.
    func closeNow() {
        context?.channel.close(promise: nil)
    }
}

@available(*, unavailable)
extension PortHandler: Sendable {}
