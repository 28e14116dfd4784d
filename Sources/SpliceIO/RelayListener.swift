internal import CSpliceLinux
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket shared by every loop of a group: each loop polls it with
/// `EPOLLEXCLUSIVE`, so a new client wakes one loop, which accepts it and hands it to the
/// group's loops in turn (as HAProxy's accepting thread does): the kernel tends to wake
/// the same waiter, and without the hand-off four iperf3 streams all landed on one loop.
/// A loop that receives a client owns its session.
///
/// One socket rather than one SO_REUSEPORT socket per loop: a reuseport bind succeeds on a
/// port another reuseport socket of the same user holds, so a second listener (or gateway)
/// on a taken address would silently share it instead of getting "address in use".
public final class RelayListener: Sendable {
    /// The address actually bound (the port is filled in when 0 was asked for).
    public let localAddress: SocketAddress
    private let fd: Int32
    private let pollers: [Poller]
    private let closed = Mutex(false)

    /// Binds and starts accepting; `accepted` runs on the client's loop for each client,
    /// with its address as `host:port` (nil if the kernel did not give one).
    public static func bind(host: String, port: Int, backlog: Int32 = 1024, group: RelayLoopGroup,
                            accepted: @escaping @Sendable (RelaySocket, String?) -> Void) throws(RelayIOError)
        -> RelayListener {
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
        let pollers = group.loops.map { Poller(fd: fd, loop: $0, group: group, accepted: accepted) }
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
        let stops = pollers.map { poller in poller.loop.submit { poller.close() } }
        let fd = self.fd
        let loops = pollers.map(\.loop)
        // Clients already handed to another loop are adopted there before this completes: a
        // task queued on each loop after every poller stopped runs after those hand-offs, so
        // a caller that then ends the listener's sessions finds them all.
        return EventLoopFuture.andAllComplete(stops, on: loop).flatMap {
            EventLoopFuture.andAllComplete(loops.map { $0.submit {} }, on: loop)
        }.map { Glibc.close(fd) }
    }
}

/// One loop's watch on the listening socket.
private final class Poller: RelayPollable, @unchecked Sendable {
    // @unchecked: `token` is touched only on `loop`.
    let fd: Int32
    let loop: RelayLoop
    let group: RelayLoopGroup
    let accepted: @Sendable (RelaySocket, String?) -> Void
    private var token: PollToken?
    private var pausedForResources = false

    init(fd: Int32, loop: RelayLoop, group: RelayLoopGroup, accepted: @escaping @Sendable (RelaySocket, String?) -> Void) {
        self.fd = fd
        self.loop = loop
        self.group = group
        self.accepted = accepted
    }

    func start() {
        guard token == nil else { return }
        token = loop.register(fd, events: splice_epoll_in | splice_epoll_exclusive, target: self)
    }

    func stop() {
        if let token { loop.deregister(token, fd: fd) }
        token = nil
    }

    func loopStopped() {
        token = nil
        pausedForResources = false
    }

    /// Stops for good (the listener is closing): a pause for resources does not resume.
    func close() {
        pausedForResources = false
        stop()
    }

    func ready(_ events: UInt32, slot: Int) {
        guard token != nil else { return }
        for _ in 0..<64 {
            var peer = sockaddr_storage()
            let client = splice_accept(fd, &peer)
            guard client >= 0 else { return acceptFailed(errno) }
            _ = splice_set_int_option(client, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            let address = RelaySocket.text(of: peer)
            let owner = group.nextLoop()
            if owner === loop {
                Self.adopt(client, address, on: loop, accepted)
            } else {
                let accepted = self.accepted
                owner.execute { Self.adopt(client, address, on: owner, accepted) }
            }
        }
    }

    /// Out of descriptors or memory, the listening socket stays readable and a
    /// level-triggered poll would spin: stop polling it for a moment instead, and let the
    /// clients wait in the backlog until sessions end and free descriptors.
    private func acceptFailed(_ error: Int32) {
        guard error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM else { return }
        stop()
        pausedForResources = true
        _ = loop.timers.add(.now() + .milliseconds(100)) { [self] in
            guard pausedForResources else { return }
            pausedForResources = false
            start()
        }
    }

    private static func adopt(_ fd: Int32, _ address: String?, on loop: RelayLoop,
                              _ accepted: @Sendable (RelaySocket, String?) -> Void) {
        guard let socket = RelaySocket(tcp: fd, loop: loop) else { return }
        accepted(socket, address)
    }
}
