import NIOCore
import SpliceCore

/// Which end of a session a port is.
enum PortRole: Equatable, CustomStringConvertible {
    /// The accepted client connection.
    case client
    /// The connection to the server.
    case server
    /// One direction's connection (or process) of a spliced mediator.
    case hop(Identifier, Direction)
    /// One direction's connection to a split recipient.
    case split(Identifier, Direction)

    var description: String {
        switch self {
        case .client: "client"
        case .server: "server"
        case .hop(let id, let direction), .split(let id, let direction): "\(id)/\(direction.rawValue)"
        }
    }
}

/// One channel of a session as the relay sees it: it feeds `outLink` and is fed by `inLink`.
///
/// The client port, for instance, reads the client-to-server stream and is written the
/// server-to-client one. Events from the channel's `PortHandler` are routed to the session.
final class Port {
    /// What this port is in the session (a replica split becomes `server` on failover).
    var role: PortRole
    /// The channel it wraps.
    let channel: Channel
    /// The handler in that channel's pipeline.
    let handler: PortHandler
    /// Bytes written into this port (for an endpoint: bytes delivered to it).
    var written: ByteCounter
    /// Bytes read from this port.
    let read: ByteCounter
    /// The link this port's reads feed.
    var outLink: Link?
    /// The link that writes into this port.
    var inLink: Link?
    /// Split recipients copying every byte written into this (endpoint) port.
    var taps: [SplitLeg] = []
    /// For a split recipient's port: the endpoint port it copies.
    var tapped: Port?
    /// Set when bytes were written and not flushed yet.
    var needsFlush = false
    /// Bytes still to discard from this port's input: a replica that took over while it
    /// was behind the old server skips what the client has already been given.
    var skip: UInt64 = 0
    /// The peer sent EOF (as opposed to the channel just going away).
    var eofReceived = false
    /// A half-close of our output has been asked for; it completes after a flush.
    var outputClosing = false
    /// Strong on purpose: the session clears it as it ends, so late channel events are no-ops.
    var session: Session?

    init(role: PortRole, channel: Channel, handler: PortHandler, session: Session?,
         written: ByteCounter = ByteCounter(), read: ByteCounter = ByteCounter()) {
        self.role = role
        self.channel = channel
        self.handler = handler
        self.written = written
        self.read = read
        self.session = session
        handler.port = self
    }

    /// Whether this port is one of the session's two endpoints (not a mediator or recipient).
    var isEndpoint: Bool {
        switch role {
        case .client, .server: true
        case .hop, .split: false
        }
    }

    /// Whether the session can act on this port's input now. An endpoint's waits (in its
    /// handler) until the server is connected and the templates are in place, so bytes and
    /// EOF that come earlier pass through every template and reach the other end in order.
    var takesInput: Bool {
        guard isEndpoint, let session else { return true }
        return session.readsEnabled
    }

    /// Whether the channel can take more writes now.
    var isWritable: Bool { handler.isWritable }

    /// Whether the handler may issue a read now: when the link it feeds can take bytes, or
    /// always for a split recipient, whose replies are read off as they come.
    var mayRead: Bool {
        guard let session, session.readsEnabled else { return false }
        if let outLink { return outLink.mayForward }
        return tapped != nil
    }

    func received(_ buffer: ByteBuffer) {
        if let outLink {
            guard skip == 0 else { return receivedSkipping(buffer, outLink) }
            session?.forward(buffer, from: outLink)
        } else {
            session?.splitPort(self, received: buffer)
        }
    }

    private func receivedSkipping(_ buffer: ByteBuffer, _ outLink: Link) {
        var buffer = buffer
        let dropped = Int(min(skip, UInt64(buffer.readableBytes)))
        buffer.moveReaderIndex(forwardBy: dropped)
        skip -= UInt64(dropped)
        read.add(dropped)
        if buffer.readableBytes > 0 { session?.forward(buffer, from: outLink) }
    }

    func readComplete() { outLink?.writer.flushIfNeeded() }
    func inputClosed() { session?.portInputClosed(self) }
    func becameWritable() { (inLink ?? tapped?.inLink)?.reader.handler.resumeRead() }
    func failed(_ error: any Error) { session?.port(self, failed: error) }
    func inactive() { session?.portInactive(self) }

    /// Writes and marks the port for the next flush.
    func write(_ buffer: ByteBuffer) {
        handler.write(buffer)
        needsFlush = true
    }

    /// Flushes if anything was written since the last flush, here and to its taps.
    func flushIfNeeded() {
        guard needsFlush else { return }
        needsFlush = false
        handler.flush()
        for tap in taps {
            tap.port.flushIfNeeded()
        }
    }

    /// Whether no `block` tap holds this port's writer back.
    var tapsAllowWriting: Bool {
        taps.allSatisfy { $0.policy == .drop || $0.port.isWritable }
    }
}

@available(*, unavailable)
extension Port: Sendable {}
