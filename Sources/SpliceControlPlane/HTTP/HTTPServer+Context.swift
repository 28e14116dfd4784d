import CMicroHTTPD
#if canImport(Glibc)
import Glibc
#endif
import Logging
import SpliceCore
import Synchronization

extension HTTPServer {
    /// What the MHD callbacks reach through their closure pointer: the
    /// configuration, the handler and the responses parked on suspended
    /// connections.
    final class Context: Sendable {
        /// The server's settings.
        let configuration: Configuration
        /// The request handler.
        let handler: Handler
        /// The connections MHD holds (the acceptor's count and deadlines).
        let gauge: ConnectionGauge
        private struct Parked {
            /// Set by `abortParked`: whatever is parked from then on is aborted at once.
            var stopping = false
            /// Set by `finishStreams`: a stream opened from then on ends at once.
            var handedOff = false
            var responses: [ObjectIdentifier: any ParkedResponse] = [:]
        }

        private let parked = Mutex(Parked())
        /// Request states not yet freed by the completion callback (leak check).
        let liveRequests = Atomic<Int>(0)

        /// A context for one daemon.
        init(configuration: Configuration, gauge: ConnectionGauge, handler: @escaping Handler) {
            self.configuration = configuration
            self.gauge = gauge
            self.handler = handler
        }

        /// The server's logger.
        var logger: Logger { configuration.logger }

        /// First call for a request, headers complete: reject early what
        /// must not reach the handler (too long, too big), else nil.
        func screen(_ state: RequestState) -> HTTPResponse? {
            if state.targetBytes > configuration.maxTargetBytes {
                return .problem(.uriTooLong(
                    "request target is \(state.targetBytes) bytes, at most \(configuration.maxTargetBytes) accepted"))
            }
            let headerBytes = state.headers.fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
            if headerBytes > configuration.maxHeaderBytes {
                return .problem(.headersTooLarge(
                    "request headers are \(headerBytes) bytes, at most \(configuration.maxHeaderBytes) accepted"))
            }
            if let length = state.headers["Content-Length"].flatMap({ Int($0) }), length > configuration.maxBodyBytes {
                return .problem(tooLarge(length))
            }
            // Before the body: a client without the token must not hold a
            // connection for as long as it takes to send one.
            return configuration.screenHead?(HTTPRequest(
                method: state.method, target: state.target, headers: state.headers, body: [],
                remoteAddress: state.remoteAddress))
        }

        /// Takes one piece of upload data; false to drop the connection.
        func accept(_ data: UnsafeRawBufferPointer, into state: RequestState) -> Bool {
            if !state.overflowed, state.body.count + data.count <= configuration.maxBodyBytes {
                state.body.append(contentsOf: data)
                return true
            }
            // A chunked body past the cap: stop keeping it, answer 413 at the
            // end, but do not read for ever either.
            state.overflowed = true
            state.body = []
            state.discarded += data.count
            return state.discarded <= 16 * configuration.maxBodyBytes
        }

        /// The request is complete, or its suspended connection was resumed:
        /// queue the response, or suspend the connection until a pending one
        /// is completed.
        func answer(_ state: RequestState, on connection: OpaquePointer) -> MHD_Result {
            let pending: PendingResponse
            if let waiting = state.pending {
                pending = waiting
            } else {
                switch respond(to: state) {
                case .now(let response):
                    return queue(response, on: connection)
                case .later(let later):
                    state.pending = later
                    register(later)
                    pending = later
                }
            }
            switch pending.park(on: connection) {
            case .respond(let response): return queue(response, on: connection)
            case .wait: return .YES
            case .close: return .NO
            }
        }

        /// Runs the handler (or answers 413).
        private func respond(to state: RequestState) -> HTTPAnswer {
            if state.overflowed { return .now(.problem(tooLarge(nil))) }
            let request = HTTPRequest(
                method: state.method, target: state.target, headers: state.headers,
                body: state.body, remoteAddress: state.remoteAddress)
            return handler(request)
        }

        /// Hands `response` to MHD for `connection`.
        func queue(_ response: HTTPResponse, on connection: OpaquePointer) -> MHD_Result {
            let created: OpaquePointer?
            switch response.body {
            case .bytes(let bytes):
                created = bytes.withUnsafeBytes { raw in
                    MHD_create_response_from_buffer(
                        raw.count, UnsafeMutableRawPointer(mutating: raw.baseAddress), .RESPMEM_MUST_COPY)
                }
            case .stream(let source):
                source.attach(connection)
                register(source)
                // Balanced by the release in Callbacks.streamFree, which MHD
                // calls even if the response is never queued.
                let cls = Unmanaged.passRetained(source).toOpaque()
                created = MHD_create_response_from_callback(
                    SG_MHD_SIZE_UNKNOWN, source.blockSize, Callbacks.streamReader, cls, Callbacks.streamFree)
                if created == nil { Unmanaged<StreamSource>.fromOpaque(cls).release(); source.release() }
            }
            guard let created else {
                logger.error("libmicrohttpd could not create a response")
                return .NO
            }
            defer { MHD_destroy_response(created) }
            // One request per connection: a second head on a kept-alive
            // connection would reach MHD without the acceptor's checks.
            _ = MHD_add_response_header(created, "Connection", "close")
            for (name, value) in response.headers where MHD_add_response_header(created, name, value) != .YES {
                logger.warning("libmicrohttpd refused response header", metadata: ["header": "\(name)"])
            }
            return MHD_queue_response(connection, UInt32(clamping: response.status), created)
        }

        /// Ends every open stream and pending answer, and every one parked
        /// later, then waits until MHD has released them.
        func abortParked(waitingUpTo timeout: Duration) {
            let responses = parked.withLock { parked in
                parked.stopping = true
                return Array(parked.responses.values)
            }
            for response in responses { response.abort() }
            let deadline = ContinuousClock.now + timeout
            while !parked.withLock(\.responses.isEmpty), ContinuousClock.now < deadline {
                usleep(5_000)
            }
        }

        /// Ends every open stream (after its `handoffNote`, once what is queued has been
        /// sent), and every one opened later: the process has handed off. Pending answers
        /// are left to come.
        func finishStreams() {
            let streams = parked.withLock { parked in
                parked.handedOff = true
                return parked.responses.values.compactMap { $0 as? StreamSource }
            }
            for stream in streams { stream.finishForHandoff() }
        }

        /// Streams and pending answers MHD has not released yet (leak check).
        var liveParked: Int { parked.withLock(\.responses.count) }

        /// Answers still waiting on the data plane (or the database): not a stream, and
        /// not a pending answer already set (a capture's, which has become its stream).
        var liveAnswers: Int {
            parked.withLock { parked in
                parked.responses.values.filter { response in
                    !(response is StreamSource) && (response as? PendingResponse)?.isAnswered != true
                }.count
            }
        }

        private func register(_ response: some ParkedResponse) {
            let key = ObjectIdentifier(response)
            let (stopping, handedOff) = parked.withLock { parked in
                if !parked.stopping { parked.responses[key] = response }
                return (parked.stopping, parked.handedOff)
            }
            // Parked after the stop's sweep: it would hold the connection
            // suspended through MHD_stop_daemon.
            if stopping { return response.abort() }
            response.onRelease { [weak self] in _ = self?.parked.withLock { $0.responses.removeValue(forKey: key) } }
            // Opened after the handoff's sweep: it would keep the drain waiting for its reader.
            if handedOff, let stream = response as? StreamSource { stream.finishForHandoff() }
        }

        private func tooLarge(_ length: Int?) -> APIError {
            let size = length.map { "\($0) bytes" } ?? "larger than that"
            return .tooLarge("request body is \(size), at most \(configuration.maxBodyBytes) bytes accepted")
        }
    }

    /// Per-request state, owned by MHD's `req_cls` from the first access
    /// callback to the completion callback; only its connection's thread
    /// touches it.
    final class RequestState {
        private let context: Context
        /// The request method.
        let method: HTTPMethod
        /// Path and raw query, as received.
        let target: String
        /// The length of `target` in bytes.
        let targetBytes: Int
        /// The request headers.
        let headers: HTTPHeaders
        /// The peer, `host:port`.
        let remoteAddress: String
        /// The body so far (empty once over the cap).
        var body: [UInt8] = []
        /// Whether the body went past the cap.
        var overflowed = false
        /// Bytes thrown away past the cap.
        var discarded = 0
        /// The handler's answer while it is pending (the connection suspended).
        var pending: PendingResponse?

        /// State for a request whose headers just arrived.
        init(
            context: Context, method: HTTPMethod, path: String, query: [(String, String?)], headers: HTTPHeaders,
            remoteAddress: String
        ) {
            self.context = context
            context.liveRequests.add(1, ordering: .relaxed)
            let queryText = query.map { name, value in value.map { "\(name)=\($0)" } ?? name }.joined(separator: "&")
            self.method = method
            self.target = query.isEmpty ? path : "\(path)?\(queryText)"
            self.targetBytes = target.utf8.count
            self.headers = headers
            self.remoteAddress = remoteAddress
        }

        // MHD's completion callback drops the last reference: the request is
        // over, so a pending answer completed later must not touch the connection.
        deinit {
            pending?.release()
            context.liveRequests.subtract(1, ordering: .relaxed)
        }
    }
}
