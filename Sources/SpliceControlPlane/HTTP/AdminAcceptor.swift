import CMicroHTTPD
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// Accepts admin connections on its own thread, reads each request head
/// (peeking, so the bytes stay in the socket) under a deadline, answers bad
/// heads itself and hands good connections to libmicrohttpd.
///
/// Why not MHD's own accept: MHD's idle timeout restarts with every byte, so
/// a client trickling a header byte a second holds a slot for ever, and at
/// the connection limit MHD stops accepting, leaving new clients queued in
/// the kernel. Here the whole head has `headTimeout`; at the limit the
/// oldest connection still sending its head makes room for the new one,
/// and only when every slot holds a complete request is a newcomer refused,
/// at once, with 503.
///
/// Threading: everything but `stop` runs on the acceptor thread; `stop`
/// wakes it through an eventfd and joins it.
final class AdminAcceptor: @unchecked Sendable {
    // @unchecked: besides the acceptor thread's own state, only `acceptingStopped` and
    // `pendingCount` (atomics) are touched from other threads.
    /// Hands an accepted, screened socket to MHD, to a daemon with compact memory pools or
    /// to the one with large pools; false if MHD refused it (MHD has closed it either way).
    typealias HandOff = (_ fd: Int32, _ peer: UnsafePointer<sockaddr>, _ length: socklen_t, _ compact: Bool) -> Bool

    /// The strict head parser.
    let screen: RequestHeadScreen
    /// Most connections reading a head or held by MHD.
    let limit: Int
    /// Time for a whole request head.
    let headTimeout: Duration
    /// MHD's per-connection memory pools: most requests get the compact one, those that do
    /// not fit it the large one, and those that fit neither are refused (`MHDPoolNeed`).
    let pools: (compact: Int, large: Int)
    /// Whether a request path may be answered with a stream, which needs the large pool.
    let streamsResponse: @Sendable (Substring) -> Bool
    /// Connections held by MHD.
    let gauge: ConnectionGauge
    /// Where refusals and trouble are logged.
    let logger: Logger
    private let handOff: HandOff
    private let listenFD: Int32
    private let epollFD: Int32
    private let wakeFD: Int32
    /// Connections not handed to MHD (acceptor thread only).
    var pending = PendingConnections()
    private var acceptPausedUntil: ContinuousClock.Instant?
    /// Until when, in a handoff, request heads still arriving are waited for (acceptor thread only).
    var handoffGraceUntil: ContinuousClock.Instant?
    /// The last connection generation handed out (acceptor thread only).
    private var generation: UInt32 = 0
    /// Peek and drain space, one longest head plus a byte (acceptor thread only).
    let buffer: UnsafeMutableRawBufferPointer
    private var thread: pthread_t?
    private var socketsClosed = false
    /// Set by `stopAcceptingForHandoff`: the listening socket belongs to a successor now.
    private let acceptingStopped = Atomic<Bool>(false)
    /// Set by `stop` before it wakes the thread.
    private let stopRequested = Atomic<Bool>(false)
    /// Connections not handed to MHD yet, as of the loop's last turn (read by other threads).
    let pendingCount = Atomic<Int>(0)
    /// How many times `stopAcceptingForHandoff` was called.
    private let stopGeneration = Atomic<Int>(0)
    /// The `stopGeneration` the thread saw, with accepting stopped, at the end of a turn:
    /// from then on nothing more is accepted and `pendingCount` counts every connection it took.
    let stopGenerationSeen = Atomic<Int>(0)

    /// Sets up the loop around the listening socket `listenFD` (which it
    /// now owns); call `start` to run it. Unless `accepting`, connections are accepted only
    /// after `startAccepting`.
    init(
        listenFD: Int32, screen: RequestHeadScreen, limit: Int, headTimeout: Duration,
        pools: (compact: Int, large: Int), streamsResponse: @escaping @Sendable (Substring) -> Bool,
        gauge: ConnectionGauge, logger: Logger, accepting: Bool = true, handOff: @escaping HandOff
    ) throws(HTTPServerError) {
        self.listenFD = listenFD
        self.screen = screen
        self.limit = max(1, limit)
        self.headTimeout = headTimeout
        self.pools = pools
        self.streamsResponse = streamsResponse
        self.gauge = gauge
        self.logger = logger
        self.handOff = handOff
        self.buffer = .allocate(byteCount: screen.maxHeadBytes + 1, alignment: 8)
        epollFD = sg_epoll_create()
        wakeFD = sg_eventfd()
        acceptingStopped.store(!accepting, ordering: .relaxed)
        guard epollFD >= 0, wakeFD >= 0,
              !accepting || sg_epoll_ctl(epollFD, 1, listenFD, SG_EPOLL_IN) == 0,
              sg_epoll_ctl(epollFD, 1, wakeFD, SG_EPOLL_IN) == 0
        else {
            // Every stored property is set, so deinit runs after this throw
            // and is the one place that closes and frees (closing here too
            // closed descriptors twice, maybe someone else's by then).
            throw .startFailed("cannot set up the admin acceptor: \(String(cString: strerror(sg_errno())))")
        }
    }

    /// Accepts no more connections, leaving them to the other process that listens on the
    /// same socket (a handoff's successor); those accepted already are served. Any thread.
    /// Returns the generation `stopGenerationSeen` reaches once the thread has seen it.
    @discardableResult
    func stopAcceptingForHandoff() -> Int {
        acceptingStopped.store(true, ordering: .releasing)
        _ = sg_epoll_ctl(epollFD, 2, listenFD, 0)
        let generation = stopGeneration.add(1, ordering: .acquiringAndReleasing).newValue
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
        return generation
    }

    /// Starts accepting on a server made with `accepting` false. Any thread; once.
    func startAccepting() throws(HTTPServerError) {
        acceptingStopped.store(false, ordering: .relaxed)
        // epoll_wait sees a descriptor added while it waits.
        guard sg_epoll_ctl(epollFD, 1, listenFD, SG_EPOLL_IN) == 0 else {
            throw .startFailed("cannot accept admin connections: \(String(cString: strerror(sg_errno())))")
        }
    }

    /// Starts the acceptor thread.
    func start() throws(HTTPServerError) {
        var handle = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<AdminAcceptor>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<AdminAcceptor>.fromOpaque(box).release()
            throw .startFailed("cannot start the admin acceptor thread: \(String(cString: strerror(result)))")
        }
        thread = handle
    }

    /// Stops accepting, closes every connection not yet handed to MHD and
    /// the listening socket, and waits for the thread. Call once.
    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
        if let thread { pthread_join(thread, nil) }
        thread = nil
        closeSockets()
    }

    /// Frees the port and every connection not handed over; the thread has ended.
    private func closeSockets() {
        guard !socketsClosed else { return }
        socketsClosed = true
        for fd in pending.descriptors { close(fd) }
        pending = PendingConnections()
        close(listenFD)
    }

    /// The only place that closes the descriptors and frees the buffer,
    /// also when `init` threw after setting every property.
    deinit {
        closeSockets()
        for fd in [epollFD, wakeFD] where fd >= 0 { close(fd) }
        buffer.deallocate()
    }

    // MARK: - The loop

    private func run() {
        var tags = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        while true {
            let count = sg_epoll_wait(epollFD, &tags, &events, 64, waitMilliseconds())
            if count < 0 && sg_errno() != EINTR {
                logger.error("admin acceptor: epoll_wait failed: \(String(cString: strerror(sg_errno())))")
                return
            }
            for index in 0..<max(0, Int(count)) {
                let fd = Int32(truncatingIfNeeded: tags[index])
                let tagged = UInt32(truncatingIfNeeded: tags[index] >> 32)
                switch fd {
                case wakeFD where tagged == 0:
                    // A handoff's wake-up only says "stop accepting"; `stop` says stop.
                    guard !stopRequested.load(ordering: .relaxed) else { return }
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                case listenFD where tagged == 0: acceptAll()
                default:
                    // An event for a connection closed earlier in this batch
                    // whose descriptor number was reused since: not ours.
                    guard pending[fd]?.generation == tagged else { continue }
                    service(fd, events: events[index])
                }
            }
            expire(now: .now)
            let generation = stopGeneration.load(ordering: .acquiring)
            let stopped = acceptingStopped.load(ordering: .acquiring)
            if stopped, generation != stopGenerationSeen.load(ordering: .relaxed) { beginHandoffGrace(now: .now) }
            endHandoffGraceIfDue(now: .now)
            pendingCount.store(pending.readingCount + pending.answeredCount, ordering: .releasing)
            if stopped {
                stopGenerationSeen.store(generation, ordering: .releasing)
            }
        }
    }

    /// Until the next deadline, at most a second.
    private func waitMilliseconds() -> Int32 {
        let now = ContinuousClock.now
        var next = now + .seconds(1)
        if let deadline = pending.nextDeadline(), deadline < next { next = deadline }
        if let paused = acceptPausedUntil, paused < next { next = paused }
        if let grace = handoffGraceUntil, grace < next { next = grace }
        let (seconds, attoseconds) = max(.zero, next - now).components
        return Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000) + 1
    }

    private func acceptAll() {
        for _ in 0..<64 where !acceptingStopped.load(ordering: .relaxed) {
            var address = sockaddr_storage()
            var length = socklen_t(0)
            let fd = sg_accept(listenFD, &address, &length)
            if fd < 0 {
                switch sg_errno() {
                case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED: return
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors: make room if a head is pending,
                    // else stop accepting for a moment instead of spinning.
                    if evictOldest(reason: "the gateway is out of file descriptors") { continue }
                    pauseAccepting()
                    return
                default: return
                }
            }
            admit(fd)
        }
    }

    private func admit(_ fd: Int32) {
        generation = generation == UInt32.max ? 1 : generation + 1
        let tag = UInt64(UInt32(bitPattern: fd)) | UInt64(generation) << 32
        guard sg_epoll_add_tagged(epollFD, fd, SG_EPOLL_HEAD, tag) == 0 else {
            close(fd)
            return
        }
        let now = ContinuousClock.now
        pending.add(fd, now: now, deadline: now + headTimeout, generation: generation)
        guard pending.readingCount + gauge.count > limit else { return }
        if let victim = pending.oldestReading(excluding: fd) {
            refuse(victim, .refusal(.overloaded, "request head not complete while \(limit) admin connections are open; closed to make room"))
        } else if gauge.evictOldestReceiving() {
            // A connection still sending its body to MHD made room.
        } else {
            answer(fd, .refusal(.overloaded, "\(limit) admin connections are open, each with a request in progress; retry"))
        }
    }

    private func pauseAccepting() {
        acceptPausedUntil = .now + .milliseconds(100)
        _ = sg_epoll_ctl(epollFD, 3, listenFD, 0)
        logger.warning("admin acceptor: out of file descriptors, accepting again in 100 ms")
    }

    private func expire(now: ContinuousClock.Instant) {
        if let paused = acceptPausedUntil, paused <= now {
            acceptPausedUntil = nil
            _ = sg_epoll_ctl(epollFD, 3, listenFD, SG_EPOLL_IN)
        }
        while let fd = pending.oldestAnswered(), let entry = pending[fd], entry.deadline <= now { drop(fd) }
        while let fd = pending.oldestReading(), let entry = pending[fd], entry.deadline <= now {
            answer(fd, .refusal(.requestTimeout, "the request head did not arrive within \(headTimeout)"))
        }
        let swept = gauge.sweep(now: now)
        if swept.givenBack > 0 { logger.warning("libmicrohttpd dropped \(swept.givenBack) admin connection(s) without starting them") }
        if swept.cut > 0 { logger.info("closed \(swept.cut) admin connection(s) whose request body did not arrive in time") }
    }

    /// Hands `fd` to MHD, to a daemon with compact pools or the one with large pools,
    /// counting it as MHD's until its close callback.
    func release(_ fd: Int32, compact: Bool) {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard named == 0 else {
            drop(fd)
            return
        }
        // Slots freed by eviction may have gone to MHD connections meanwhile.
        guard gauge.count < limit || gauge.evictOldestReceiving() else {
            answer(fd, .refusal(.overloaded, "\(limit) admin connections are open, each with a request in progress; retry"))
            return
        }
        _ = sg_epoll_ctl(epollFD, 2, fd, 0)
        pending.remove(fd)
        gauge.reserve(fd)
        let added = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { handOff(fd, $0, length, compact) }
        }
        if !added {
            gauge.unreserve(fd)
            logger.warning("libmicrohttpd refused an admin connection")
        }
    }

    /// Stops watching `fd` and closes it.
    func drop(_ fd: Int32) {
        _ = sg_epoll_ctl(epollFD, 2, fd, 0)
        pending.remove(fd)
        close(fd)
    }
}
