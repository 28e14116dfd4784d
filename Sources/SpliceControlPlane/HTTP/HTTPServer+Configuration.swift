import Logging

extension HTTPServer {
    /// Where and how the admin HTTP server listens, and the limits it enforces.
    public struct Configuration: Sendable {
        /// An IPv4 or IPv6 literal (brackets optional), or `localhost` (127.0.0.1).
        public var host: String
        /// The port; 0 binds an ephemeral one (read it back from `boundPort`).
        public var port: Int
        /// Most simultaneous connections; more are refused at accept.
        public var connectionLimit: Int = 256
        /// Seconds a connection may sit idle before MHD closes it.
        public var idleTimeoutSeconds: Int = 30
        /// MHD's per-connection memory pool. Requests whose line and headers
        /// exceed it get MHD's own HTML error (see `HTTPServer+Callbacks.swift`),
        /// so it sits well above `maxTargetBytes` and `maxHeaderBytes`.
        public var connectionMemoryLimit: Int = 128 * 1024
        /// The largest request body accepted; larger ones get 413.
        public var maxBodyBytes: Int = 64 * 1024
        /// The longest request target (path and query) accepted; longer get 414.
        public var maxTargetBytes: Int = 8 * 1024
        /// The most header bytes accepted (names, values, separators); more get 431.
        public var maxHeaderBytes: Int = 32 * 1024
        /// MHD worker threads, each with its own share of the connections.
        /// Handlers run on them but never wait on the data plane.
        public var threadPoolSize: Int = 4
        /// Where MHD's own diagnostics and handler failures are logged.
        public var logger: Logger = Logger(label: "splicegate.http")

        /// Listens on `host:port` with default limits.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }
}
