import CMicroHTTPD
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// The admin HTTP/1.1 server: a libmicrohttpd daemon calling one Swift handler.
///
/// Connections: an `AdminAcceptor` owns the listening socket, reads and
/// checks every request head under a deadline and answers bad ones itself
/// (problem+json, then close); good connections go to one of `threadPoolSize`
/// MHD daemons through `MHD_add_connection` (a request that may not fit their
/// small memory pools, `MHDPoolNeed`: to one more daemon, whose connections
/// get the large pool such a head needs). Every response
/// carries `Connection: close`, so each connection carries one request and
/// every head passes the acceptor's checks, not only a connection's first.
///
/// Threading: each daemon runs one internal thread with its own epoll loop
/// (`MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL`; MHD's thread pool
/// needs a listening socket, so the pool is several daemons). Not
/// thread-per-connection, because streamed responses (Server-Sent Events)
/// are parked with `MHD_suspend_connection`, which MHD does not support in
/// that mode, and an idle event stream must not hold a thread.
/// Handlers run synchronously on a daemon's thread and never wait on the data
/// plane: one that needs it answers `.later`, and the connection is suspended
/// until the data plane completes the response (a drain may last minutes).
public final class HTTPServer: Sendable {
    /// The handler every fully received request is passed to.
    public typealias Handler = @Sendable (HTTPRequest) -> HTTPAnswer

    /// The bound host as a literal (`localhost` reads back as `127.0.0.1`).
    public let boundHost: String
    /// The bound port; the real one when the configuration asked for 0.
    public let boundPort: Int
    /// `http://host:port`, IPv6 hosts bracketed.
    public var baseURL: String {
        boundHost.contains(":") ? "http://[\(boundHost)]:\(boundPort)" : "http://\(boundHost):\(boundPort)"
    }

    /// The listening socket, to pass to a successor process in a handoff (the server keeps it).
    public let listenDescriptor: Int32

    // The daemon pointers are opaque C handles, only used under this lock
    // (and by the acceptor, which stop joins before stopping them).
    private let daemons: Mutex<[OpaqueHandle]>
    private let context: Context
    private let acceptor: AdminAcceptor

    /// Binds and starts serving `handler`; throws if the address is unusable
    /// or libmicrohttpd refuses to start (port in use, …).
    public init(configuration: Configuration, handler: @escaping Handler) throws(HTTPServerError) {
        let address: IPAddress
        let listenFD: Int32
        if let inherited = configuration.inheritedListenFD {
            // A predecessor's listening socket (a handoff): serve where it is bound.
            guard let bound = Self.boundAddress(of: inherited) else {
                close(inherited)
                throw .startFailed("the admin socket handed over is not a bound IP socket")
            }
            address = bound
            listenFD = inherited
        } else {
            guard let parsed = IPAddress(host: configuration.host, port: configuration.port) else {
                throw .badAddress("'\(configuration.host)' port \(configuration.port) is not an IP literal or localhost with a valid port")
            }
            address = parsed
            listenFD = address.withSockAddr { sockaddr in
                sg_listen(sockaddr, socklen_t(address.isIPv6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size), Int32(SOMAXCONN))
            }
            guard listenFD >= 0 else {
                throw .startFailed("cannot listen on \(address.hostPort): \(String(cString: strerror(sg_errno())).lowercased())")
            }
        }
        let gauge = ConnectionGauge(requestTime: .seconds(configuration.bodyTimeoutSeconds))
        let context = Context(configuration: configuration, gauge: gauge, handler: handler)
        var started: [OpaqueHandle] = []
        do throws(HTTPServerError) {
            for _ in 0..<max(1, configuration.threadPoolSize) {
                started.append(try Self.startDaemon(configuration, pool: configuration.compactConnectionMemory,
                                                    context: context, gauge: gauge, address: address))
            }
            started.append(try Self.startDaemon(configuration, pool: configuration.connectionMemoryLimit,
                                                context: context, gauge: gauge, address: address))
        } catch {
            Self.stop(started, context: context)
            close(listenFD)
            throw error
        }
        let screen = RequestHeadScreen(
            maxTargetBytes: configuration.maxTargetBytes, maxHeaderBytes: configuration.maxHeaderBytes,
            maxBodyBytes: configuration.maxBodyBytes)
        do throws(HTTPServerError) {
            acceptor = try AdminAcceptor(
                listenFD: listenFD, screen: screen, limit: configuration.connectionLimit,
                headTimeout: .seconds(configuration.headTimeoutSeconds),
                pools: (configuration.compactConnectionMemory, configuration.connectionMemoryLimit),
                streamsResponse: configuration.streamsResponse ?? { _ in false },
                gauge: gauge, logger: configuration.logger, accepting: configuration.acceptsAtStart
            ) { [started] fd, peer, length, compact in
                // The last daemon is the one with the large pools.
                let large = started.count - 1
                let daemon = compact ? started[Int(fd) % large] : started[large]
                return MHD_add_connection(daemon.pointer, fd, peer, length) == .YES
            }
            try acceptor.start()
        } catch {
            Self.stop(started, context: context)
            throw error
        }
        self.context = context
        self.listenDescriptor = listenFD
        self.daemons = Mutex(started)
        self.boundHost = address.host
        self.boundPort = Int(sg_bound_port(listenFD))
        configuration.logger.info("admin HTTP server listening", metadata: ["address": "\(baseURL)"])
    }

    /// One single-threaded daemon whose connections each get a `pool`-byte memory pool,
    /// retaining `context` and sharing `gauge` (unretained: the acceptor keeps it alive).
    private static func startDaemon(
        _ configuration: Configuration, pool: Int, context: Context, gauge: ConnectionGauge, address: IPAddress
    ) throws(HTTPServerError) -> OpaqueHandle {
        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        if address.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        // MHD keeps the context pointer until MHD_stop_daemon returns.
        let contextPointer = Unmanaged.passRetained(context).toOpaque()
        let daemon = sg_mhd_start_daemon(
            flags,
            Callbacks.accessHandler, contextPointer,
            Callbacks.requestCompleted, contextPointer,
            ConnectionGauge.notify, Unmanaged.passUnretained(gauge).toOpaque(),
            Callbacks.logger, contextPointer,
            UInt32(clamping: configuration.connectionLimit),
            UInt32(clamping: configuration.idleTimeoutSeconds),
            pool)
        guard let daemon else {
            Unmanaged<Context>.fromOpaque(contextPointer).release()
            throw .startFailed("libmicrohttpd could not start for \(address.hostPort)")
        }
        return OpaqueHandle(daemon)
    }

    /// Accepts connections on a server configured not to at start (`acceptsAtStart`).
    public func startAccepting() throws(HTTPServerError) {
        try acceptor.startAccepting()
    }

    /// Stops the daemon: ends open streams, waits for in-flight handlers,
    /// closes every connection and frees the port. Idempotent.
    public func stop() {
        let stopped = daemons.withLock { current in
            defer { current = [] }
            return current
        }
        guard !stopped.isEmpty else { return }
        // No new connection reaches MHD once the acceptor thread has ended.
        acceptor.stop()
        Self.stop(stopped, context: context)
    }

    private static func stop(_ daemons: [OpaqueHandle], context: Context) {
        // MHD aborts the process when stopped with suspended connections;
        // streams and pending answers are woken with an abort first and given
        // a moment to be released.
        context.abortParked(waitingUpTo: .seconds(2))
        for daemon in daemons {
            MHD_stop_daemon(daemon.pointer)
            // No callback of this daemon can run any more: give back its reference.
            Unmanaged.passUnretained(context).release()
        }
    }

    /// Stops accepting admin connections, leaving the listening socket to a successor process
    /// that shares it (a handoff), ends the open streams (event streams, captures: each
    /// finished properly after what is queued, so that its client holds a complete response
    /// and reconnects to the successor), and waits (at most `timeout`) until every connection
    /// accepted already has been answered and closed, so that none is cut by this process's exit.
    public func stopAcceptingAndDrain(timeout: Duration) {
        let generation = acceptor.stopAcceptingForHandoff()
        let deadline = ContinuousClock.now + timeout
        // Until the acceptor thread has finished its turn, a connection it took may not be
        // counted anywhere yet.
        while acceptor.stopGenerationSeen.load(ordering: .acquiring) < generation, ContinuousClock.now < deadline {
            usleep(1000)
        }
        context.finishStreams()
        while acceptor.pendingCount.load(ordering: .acquiring) + context.gauge.count
                + context.liveRequests.load(ordering: .relaxed) > 0,
              ContinuousClock.now < deadline {
            usleep(5000)
        }
    }

    /// Answers in flight that wait on the data plane (or the database), such as a kill or a
    /// splice: a handoff waits for them. Streams (events, captures) are not counted.
    public var parkedAnswers: Int { context.liveAnswers }

    /// The IP address a listening socket is bound to.
    private static func boundAddress(of fd: Int32) -> IPAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { IPAddress($0) } }
    }

    /// Per-request states, and streams and pending answers, MHD still holds;
    /// both drop to zero once connections finish (what the tests check for leaks).
    var liveResources: (requests: Int, parked: Int) {
        (context.liveRequests.load(ordering: .relaxed), context.liveParked)
    }

    deinit { stop() }
}

/// A C handle that is only touched under a lock or by its owning daemon.
struct OpaqueHandle: @unchecked Sendable {
    /// The C pointer.
    let pointer: OpaquePointer
    /// Wraps `pointer`.
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}
