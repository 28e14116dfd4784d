import CMicroHTTPD
import Logging
import Synchronization

/// The admin HTTP/1.1 server: a libmicrohttpd daemon calling one Swift handler.
///
/// Threading: MHD runs `threadPoolSize` internal worker threads, each with
/// its own epoll loop (`MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL`).
/// Not thread-per-connection, because streamed responses (Server-Sent
/// Events) are parked with `MHD_suspend_connection`, which MHD does not
/// support in that mode, and an idle event stream must not hold a thread.
/// Handlers run synchronously on a worker and never wait on the data plane:
/// one that needs it answers `.later`, and the connection is suspended until
/// the data plane completes the response (a drain may last minutes).
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

    // The daemon pointer is an opaque C handle, only used under this lock.
    private let daemon: Mutex<OpaqueHandle?>
    private let context: Context

    /// Binds and starts serving `handler`; throws if the address is unusable
    /// or libmicrohttpd refuses to start (port in use, …).
    public init(configuration: Configuration, handler: @escaping Handler) throws(HTTPServerError) {
        guard let address = IPAddress(host: configuration.host, port: configuration.port) else {
            throw .badAddress("'\(configuration.host)' port \(configuration.port) is not an IP literal or localhost with a valid port")
        }
        let context = Context(configuration: configuration, handler: handler)
        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue
            | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        if address.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        // MHD keeps the context pointer until MHD_stop_daemon returns.
        let contextPointer = Unmanaged.passRetained(context).toOpaque()
        let started = address.withSockAddr { sockaddr in
            sg_mhd_start_daemon(
                flags, sockaddr,
                Callbacks.accessHandler, contextPointer,
                Callbacks.requestCompleted, contextPointer,
                Callbacks.logger, contextPointer,
                UInt32(clamping: configuration.connectionLimit),
                UInt32(clamping: configuration.idleTimeoutSeconds),
                configuration.connectionMemoryLimit,
                UInt32(clamping: configuration.threadPoolSize))
        }
        guard let started else {
            Unmanaged<Context>.fromOpaque(contextPointer).release()
            throw .startFailed("libmicrohttpd could not start on \(address.hostPort) (address in use or not local?)")
        }
        self.context = context
        self.daemon = Mutex(OpaqueHandle(started))
        self.boundHost = address.host
        self.boundPort = Int(sg_mhd_bound_port(started))
        configuration.logger.info("admin HTTP server listening", metadata: ["address": "\(baseURL)"])
    }

    /// Stops the daemon: ends open streams, waits for in-flight handlers,
    /// closes every connection and frees the port. Idempotent.
    public func stop() {
        guard let handle = daemon.withLock({ current in
            defer { current = nil }
            return current
        }) else { return }
        // MHD aborts the process when stopped with suspended connections;
        // streams and pending answers are woken with an abort first and given
        // a moment to be released.
        context.abortParked(waitingUpTo: .seconds(2))
        MHD_stop_daemon(handle.pointer)
        // No callback can run any more: give back the daemon's reference.
        Unmanaged.passUnretained(context).release()
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
