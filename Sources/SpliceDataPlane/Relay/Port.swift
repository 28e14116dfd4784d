import NIOCore
import SpliceCore
import SpliceIO

/// Which end of a session a port is.
enum PortRole: Equatable, CustomStringConvertible {
    /// The accepted client connection.
    case client
    /// The connection to the server.
    case server
    /// One direction's connection (or process) of a spliced mediator.
    case hop(HopID, Direction)
    /// One direction's connection to a split recipient.
    case split(SplitID, Direction)

    var description: String {
        switch self {
        case .client: "client"
        case .server: "server"
        case .hop(let id, let direction): "\(id)/\(direction.rawValue)"
        case .split(let id, let direction): "\(id)/\(direction.rawValue)"
        }
    }
}

/// One socket of a session as the relay sees it: it feeds `outLink` and is fed by `inLink`.
///
/// The client port, for instance, reads the client-to-server stream and is written the
/// server-to-client one. It is its socket's delegate and routes the socket's events to the
/// session.
///
/// Back-pressure is nothing but `mayRead`: a socket whose outgoing link cannot take bytes
/// is not read, so the bytes wait in the kernel and TCP slows the sender. The same holds
/// input back until the session is ready for it (server connected, templates spliced, a
/// mediator or recipient wired in), so bytes and EOF that come early wait in order.
final class Port: RelaySocketDelegate {
    /// What this port is in the session (a replica split becomes `server` on failover).
    var role: PortRole
    /// The socket it drives (the port is its delegate until it closes).
    let socket: any PortSocket
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
    /// Bytes still to discard from this port's input: a replica that took over while it
    /// was behind the old server skips what the client has already been given.
    var skip: UInt64 = 0
    /// The peer sent EOF (as opposed to the channel just going away).
    var eofReceived = false
    /// A half-close of our output has been asked for; it completes after a flush.
    var outputClosing = false
    /// Strong on purpose: the session clears it as it ends, so late channel events are no-ops.
    var session: Session?

    init(role: PortRole, socket: any PortSocket, session: Session?,
         written: ByteCounter = ByteCounter(), read: ByteCounter = ByteCounter()) {
        self.role = role
        self.socket = socket
        self.written = written
        self.read = read
        self.session = session
        socket.delegate = self
    }

    /// Whether this port is one of the session's two endpoints (not a mediator or recipient).
    var isEndpoint: Bool {
        switch role {
        case .client, .server: true
        case .hop, .split: false
        }
    }

    /// Whether the socket can take more writes now.
    var isWritable: Bool { socket.isWritable }

    // MARK: socket events

    /// Whether the socket may be read now: when the link it feeds can take bytes, or
    /// always for a split recipient, whose replies are read off as they come.
    var mayRead: Bool {
        guard let session, session.readsEnabled else { return false }
        if let outLink { return outLink.mayForward }
        return tapped != nil
    }

    /// Until the session relays (server dialled, templates spliced, not held by a handoff)
    /// a client's reset waits behind its bytes and is passed on after them; once it relays,
    /// input held back is held by a slow peer or a drain, and a reset ends the session.
    var dropsInputOnReset: Bool { session?.readsEnabled ?? true }

    func received(_ bytes: UnsafeRawBufferPointer) {
        if let outLink {
            guard skip == 0 else { return receivedSkipping(bytes, outLink) }
            session?.forward(bytes, from: outLink)
        } else {
            session?.splitPort(self, received: bytes)
        }
    }

    private func receivedSkipping(_ bytes: UnsafeRawBufferPointer, _ outLink: Link) {
        let dropped = Int(min(skip, UInt64(bytes.count)))
        skip -= UInt64(dropped)
        read.add(dropped)
        if dropped < bytes.count { session?.forward(UnsafeRawBufferPointer(rebasing: bytes[dropped...]), from: outLink) }
    }

    func inputClosed() { session?.portInputClosed(self) }
    func becameWritable() { (inLink ?? tapped?.inLink)?.reader.socket.resumeRead() }
    func failed(_ error: RelayIOError) { session?.port(self, failed: error) }
    func closed() { session?.portInactive(self) }

    /// Writes at once; what the peer cannot take yet waits in the socket.
    func write(_ bytes: UnsafeRawBufferPointer) {
        socket.write(bytes)
    }

    /// Whether no `block` tap holds this port's writer back.
    var tapsAllowWriting: Bool {
        taps.allSatisfy { $0.policy == .drop || $0.port.isWritable }
    }
}

@available(*, unavailable)
extension Port: Sendable {}
