import Logging

extension HTTPServer {
    /// Where and how the admin HTTP server listens, and the limits it enforces.
    public struct Configuration: Sendable {
        /// An IPv4 or IPv6 literal (brackets optional), or `localhost` (127.0.0.1).
        public var host: String
        /// The port; 0 binds an ephemeral one (read it back from `boundPort`).
        public var port: Int
        /// Most simultaneous connections. At the limit the oldest connection
        /// still sending its request head is closed to make room; when every
        /// one holds a complete request, a new connection is refused with 503.
        public var connectionLimit: Int = 256
        /// Seconds a connection has to send its whole request head (not only
        /// between bytes); then it gets 408 and is closed.
        public var headTimeoutSeconds: Int = 10
        /// Seconds a connection has, once its head is complete, for the rest
        /// of its request (the body); then it is closed. At the limit, a
        /// connection still sending its body is closed to make room.
        public var bodyTimeoutSeconds: Int = 30
        /// Called with a request's head (empty body) before its body is read;
        /// a response ends the request there, unread (the admin token check).
        public var screenHead: (@Sendable (HTTPRequest) -> HTTPResponse?)?
        /// Whether a request for this path (no query) may be answered with a long stream
        /// (events, captures). Such a request gets the large pool even when it would fit the
        /// compact one: MHD builds each chunk of a streamed body in the pool, so a compact
        /// pool cut a capture's chunks to under 32 KiB and, read live, halved the captured
        /// session's iperf3 rate.
        public var streamsResponse: (@Sendable (Substring) -> Bool)?
        /// Seconds a connection may sit idle after its head before MHD closes it.
        public var idleTimeoutSeconds: Int = 30
        /// MHD's per-connection memory pool for requests that do not fit
        /// `compactConnectionMemory`. It sits well above the longest head the acceptor lets
        /// through (`maxTargetBytes` + `maxHeaderBytes` + 1 KiB); a head with so many fields,
        /// query arguments or cookies that MHD's records of them would not fit either
        /// (`MHDPoolNeed`) gets a 431 from the acceptor.
        public var connectionMemoryLimit: Int = 128 * 1024
        /// MHD's per-connection memory pool for requests that fit it (`MHDPoolNeed`), which
        /// is nearly all of them. MHD takes a pool of up to 32 KiB from malloc, but maps a
        /// larger one afresh for each connection: page faults as it fills, and an `munmap` at
        /// close that interrupts the other cores to flush their TLBs (about a third of MHD's
        /// time per request on the bench machine).
        public var compactConnectionMemory: Int = 32 * 1024
        /// The largest request body accepted; larger ones get 413.
        public var maxBodyBytes: Int = 64 * 1024
        /// The longest request target (path and query) accepted; longer get 414.
        public var maxTargetBytes: Int = 8 * 1024
        /// The most header bytes accepted (names, values, separators); more get 431.
        public var maxHeaderBytes: Int = 32 * 1024
        /// MHD worker threads (one daemon each), each with its own share of the connections,
        /// and one more for requests too large for `compactConnectionMemory`. Handlers run on
        /// them but never wait on the data plane.
        public var threadPoolSize: Int = 4
        /// Where MHD's own diagnostics and handler failures are logged.
        public var logger: Logger = Logger(label: "splicegate.http")

        /// A listening socket to serve on instead of binding `host:port` (a predecessor's,
        /// handed over with its sessions); the server takes ownership of it.
        public var inheritedListenFD: Int32?
        /// Whether connections are accepted from the start; when false (a handoff's successor,
        /// whose predecessor still serves the socket), only after `startAccepting()`.
        public var acceptsAtStart = true

        /// Listens on `host:port` with default limits.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }
}
