internal import CSpliceLinux
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket shared by every loop of a group: each loop polls it with
/// `EPOLLEXCLUSIVE`, so a new client wakes one loop, which accepts it and owns its session.
public final class RelayListener: Sendable {
    /// The address actually bound (the port is filled in when 0 was asked for).
    public let localAddress: SocketAddress
    private let fd: Int32
    private let pollers: [Poller]
    private let closed = Mutex(false)

    /// Binds and starts accepting; `accepted` runs on the accepting loop for each client.
    public static func bind(host: String, port: Int, backlog: Int32 = 1024, group: RelayLoopGroup,
                            accepted: @escaping @Sendable (RelaySocket) -> Void) throws(RelayIOError) -> RelayListener {
        let address: SocketAddress
        do {
            address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            throw .resolve(host, "\(error)")
        }
        let fd = splice_stream_socket(Int32(address.protocol.rawValue))
        guard fd >= 0 else { throw .system("socket", errno) }
        _ = splice_set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        let rc = address.withSockAddr { pointer, length in Glibc.bind(fd, pointer, socklen_t(length)) }
        guard rc == 0, listen(fd, backlog) == 0 else {
            let error = errno
            Glibc.close(fd)
            throw .system("bind", error)
        }
        guard let local = RelaySocket.address(of: fd, peer: false) else {
            let error = errno
            Glibc.close(fd)
            throw .system("getsockname", error)
        }
        let pollers = group.loops.map { Poller(fd: fd, loop: $0, accepted: accepted) }
        let listener = RelayListener(localAddress: local, fd: fd, pollers: pollers)
        for poller in pollers { poller.loop.execute { poller.start() } }
        return listener
    }

    private init(localAddress: SocketAddress, fd: Int32, pollers: [Poller]) {
        self.localAddress = localAddress
        self.fd = fd
        self.pollers = pollers
    }

    /// Stops accepting: every loop lets go of the socket, then it is closed. Clients
    /// already accepted are not affected.
    public func close() -> EventLoopFuture<Void> {
        let first = closed.withLock { done in
            defer { done = true }
            return !done
        }
        let loop = pollers[0].loop
        guard first else { return loop.makeSucceededVoidFuture() }
        let stops = pollers.map { poller in poller.loop.submit { poller.stop() } }
        let fd = self.fd
        return EventLoopFuture.andAllComplete(stops, on: loop).map { Glibc.close(fd) }
    }
}

/// One loop's watch on the listening socket.
private final class Poller: RelayPollable, @unchecked Sendable {
    // @unchecked: `token` is touched only on `loop`.
    let fd: Int32
    let loop: RelayLoop
    let accepted: @Sendable (RelaySocket) -> Void
    private var token: PollToken?

    init(fd: Int32, loop: RelayLoop, accepted: @escaping @Sendable (RelaySocket) -> Void) {
        self.fd = fd
        self.loop = loop
        self.accepted = accepted
    }

    func start() {
        token = loop.register(fd, events: splice_epoll_in | splice_epoll_exclusive, target: self)
    }

    func stop() {
        if let token { loop.deregister(token, fd: fd) }
        token = nil
    }

    func ready(_ events: UInt32, slot: Int) {
        guard token != nil else { return }
        for _ in 0..<64 {
            let client = splice_accept(fd)
            guard client >= 0 else { return }
            _ = splice_set_int_option(client, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            guard let socket = RelaySocket(tcp: client, loop: loop) else { continue }
            accepted(socket)
        }
    }
}
