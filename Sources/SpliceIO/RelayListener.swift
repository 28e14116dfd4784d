internal import CSpliceLinux
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket shared by every loop of a group: each loop polls it with
/// `EPOLLEXCLUSIVE`, so a new client wakes one loop, which accepts it and keeps it unless
/// another loop has less to do (`RelayLoopGroup.owner(forClientAcceptedOn:)`, as HAProxy
/// picks the least loaded thread): the kernel tends to wake the same waiter, and without
/// the hand-off four iperf3 streams all landed on one loop. A loop that receives a client
/// owns its session.
///
/// Accepting stops short of the descriptor limit (`descriptorReserve`): the last
/// descriptors are kept for what the gateway needs to stay in control when clients use up
/// the rest (the admin API, dialing servers, mediators and split recipients), and clients
/// past that wait in the backlog until sessions end.
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

    /// How many descriptors below the `RLIMIT_NOFILE` soft limit accepting stops: a
    /// sixteenth of the limit, at least 8 and at most 256.
    public static func descriptorReserve(limit: Int) -> Int {
        max(8, min(256, limit / 16))
    }

    /// The lowest descriptor number at which accepting pauses (the kernel hands out the
    /// lowest free number, so a client's number is at most the count in use), or nil
    /// without a limit.
    static var descriptorCeiling: Int32? {
        let limit = splice_descriptor_limit()
        guard limit > 0 else { return nil }
        return Int32(clamping: max(0, Int(limit) - descriptorReserve(limit: Int(limit))))
    }

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
        return try adopt(fd, group: group, accepted: accepted)
    }

    /// Starts accepting on a listening socket bound elsewhere (received from a predecessor
    /// process in a handoff); takes ownership of `fd`, closing it on failure.
    /// With `paused` it accepts only after `resume`.
    public static func adopt(_ fd: Int32, group: RelayLoopGroup, paused: Bool = false,
                             accepted: @escaping @Sendable (RelaySocket, String?) -> Void) throws(RelayIOError)
        -> RelayListener {
        guard let local = RelaySocket.address(of: fd, peer: false) else {
            let error = errno
            Glibc.close(fd)
            throw .system("getsockname", error)
        }
        _ = splice_set_nonblocking(fd)
        let reserve = DescriptorReserve(ceiling: descriptorCeiling ?? .max)
        let pollers = group.loops.map {
            Poller(fd: fd, loop: $0, group: group, reserve: reserve, accepted: accepted)
        }
        let listener = RelayListener(localAddress: local, fd: fd, pollers: pollers)
        if !paused { listener.resume() }
        return listener
    }

    private init(localAddress: SocketAddress, fd: Int32, pollers: [Poller]) {
        self.localAddress = localAddress
        self.fd = fd
        self.pollers = pollers
    }

    /// The listening descriptor, to pass to a successor process (the listener keeps it).
    public var descriptor: Int32 { fd }

    /// Stops accepting for a while (a handoff is under way), the socket kept open: clients
    /// wait in the backlog. Completes once every loop has stopped polling it and adopted
    /// the clients already handed to it.
    public func pause() -> EventLoopFuture<Void> {
        let loop = pollers[0].loop
        let stops = pollers.map { poller in poller.loop.submit { poller.close() } }
        let loops = pollers.map(\.loop)
        return EventLoopFuture.andAllComplete(stops, on: loop).flatMap {
            EventLoopFuture.andAllComplete(loops.map { $0.submit {} }, on: loop)
        }
    }

    /// Accepts again after `pause` (the handoff failed).
    public func resume() {
        guard !closed.withLock({ $0 }) else { return }
        for poller in pollers { poller.loop.execute { poller.start() } }
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
    /// Where accepting stops short of the descriptor limit, shared by the listener's loops.
    let reserve: DescriptorReserve
    private var token: PollToken?
    private var pausedForResources = false

    init(fd: Int32, loop: RelayLoop, group: RelayLoopGroup, reserve: DescriptorReserve,
         accepted: @escaping @Sendable (RelaySocket, String?) -> Void) {
        self.fd = fd
        self.loop = loop
        self.group = group
        self.reserve = reserve
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
        // Another loop reached the reserve: wait with it.
        if reserve.reached.load(ordering: .relaxed) { return pauseForResources() }
        // One client per readiness report: the socket is polled level-triggered, so the
        // next wait reports it again while clients remain, and no accept is spent on
        // finding the backlog empty (1.46 accept4 calls per client before, at 8 in flight).
        do {
            var peer = sockaddr_storage()
            let client = splice_accept(fd, &peer)
            guard client >= 0 else { return acceptFailed(errno) }
            _ = splice_set_int_option(client, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            let address = RelaySocket.text(of: peer)
            let owner = group.owner(forClientAcceptedOn: loop)
            owner.incoming.wrappingAdd(1, ordering: .relaxed)
            if owner === loop {
                Self.adopt(client, address, on: loop, accepted)
            } else {
                let accepted = self.accepted
                owner.execute { Self.adopt(client, address, on: owner, accepted) }
            }
            // Into the reserve: this client is served, the next wait in the backlog. Clients
            // on their way (this one too) have not dialled their servers yet: those
            // descriptors are spoken for (a burst accepted up to the ceiling by several loops
            // and dialled past it took the reserve, and the admin API and the dials themselves
            // went without).
            if Int(client) + group.clientsInFlight >= Int(reserve.ceiling) {
                reserve.reached.store(true, ordering: .relaxed)
                return pauseForResources()
            }
        }
    }

    /// Out of descriptors or memory, the listening socket stays readable and a
    /// level-triggered poll would spin: stop polling it for a moment instead, and let the
    /// clients wait in the backlog until sessions end and free descriptors.
    private func acceptFailed(_ error: Int32) {
        guard error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM else { return }
        pauseForResources()
    }

    /// Stops polling for 100 ms, then looks again.
    private func pauseForResources() {
        stop()
        pausedForResources = true
        _ = loop.timers.add(.now() + .milliseconds(100)) { [self] in
            guard pausedForResources else { return }
            pausedForResources = false
            if reserve.reached.load(ordering: .relaxed) {
                guard reserve.hasRoom(probing: fd) else { return pauseForResources() }
                reserve.reached.store(false, ordering: .relaxed)
            }
            start()
        }
    }

    /// Gives a client counted in `loop.incoming` its socket and session. It stays counted
    /// until the session's first deferred work (the server's dial, which `later` runs in
    /// order) has taken its descriptor.
    private static func adopt(_ fd: Int32, _ address: String?, on loop: RelayLoop,
                              _ accepted: @Sendable (RelaySocket, String?) -> Void) {
        defer { loop.later { loop.incoming.wrappingSubtract(1, ordering: .relaxed) } }
        guard let socket = RelaySocket(tcp: fd, loop: loop) else { return }
        accepted(socket, address)
    }
}

/// The descriptors a listener leaves free (see `RelayListener`): once a client's number
/// reaches `ceiling`, every loop stops accepting until sessions have given some back.
final class DescriptorReserve: Sendable {
    let ceiling: Int32
    /// Set by the loop whose client reached the ceiling; cleared by a loop that finds room.
    let reached = Atomic<Bool>(false)

    init(ceiling: Int32) {
        self.ceiling = ceiling
    }

    /// Whether the next descriptor would be below the ceiling (two syscalls, made only while
    /// paused, once per pause).
    func hasRoom(probing fd: Int32) -> Bool {
        let next = splice_lowest_free_descriptor(fd)
        return next >= 0 && next < ceiling
    }
}
