import CMicroHTTPD
#if canImport(Glibc)
import Glibc
#endif

extension HTTPServer {
    /// The C callbacks handed to libmicrohttpd.
    ///
    /// `static let` closures on a nonisolated type: a closure written in
    /// `main.swift` would be main-actor isolated and trap when MHD calls it
    /// from its own threads (TRAP 2). Each one only unwraps its pointers and
    /// defers to `Context`.
    ///
    /// What MHD answers itself (TRAP 8, verified on 0.9.75): a head that
    /// does not fit the connection's memory pool, or that MHD cannot parse,
    /// gets a compiled-in HTML page and the access handler is never called;
    /// 0.9.75 has no hook to replace those bodies. So no head reaches MHD
    /// unchecked: `AdminAcceptor` reads every head first and answers what is
    /// malformed, ambiguous or too long with problem+json, and sends each head
    /// to a daemon whose pools it fits (`MHDPoolNeed`).
    enum Callbacks {
        /// Called per request: once with headers, once per body piece, once at the end.
        static let accessHandler: MHD_AccessHandlerCallback = {
            cls, connection, url, method, _, uploadData, uploadDataSize, requestContext in
            guard let cls, let connection, let requestContext, let uploadDataSize else { return .NO }
            let context = Unmanaged<Context>.fromOpaque(cls).takeUnretainedValue()
            guard let existing = requestContext.pointee else {
                let state = RequestState(
                    context: context,
                    method: HTTPMethod(rawValue: method.map { String(cString: $0) } ?? ""),
                    path: url.map { String(cString: $0) } ?? "/",
                    query: pairs(of: connection, kind: .GET_ARGUMENT_KIND),
                    headers: HTTPHeaders(pairs(of: connection, kind: .HEADER_KIND).map { ($0, $1 ?? "") }),
                    remoteAddress: sg_mhd_client_address(connection).flatMap(IPAddress.init)?.hostPort ?? "")
                // Released in requestCompleted, which MHD calls for every
                // request the access handler has seen.
                requestContext.pointee = Unmanaged.passRetained(state).toOpaque()
                if let rejection = context.screen(state) {
                    context.gauge.requestComplete(sg_mhd_connection_fd(connection))
                    return context.queue(rejection, on: connection)
                }
                return .YES
            }
            let state = Unmanaged<RequestState>.fromOpaque(existing).takeUnretainedValue()
            if uploadDataSize.pointee > 0 {
                let data = UnsafeRawBufferPointer(start: uploadData, count: uploadDataSize.pointee)
                uploadDataSize.pointee = 0
                return context.accept(data, into: state) ? .YES : .NO
            }
            // The whole request is in: no longer cut at its deadline or to make room.
            context.gauge.requestComplete(sg_mhd_connection_fd(connection))
            return context.answer(state, on: connection)
        }

        /// Frees the request state MHD kept in `req_cls`.
        static let requestCompleted: MHD_RequestCompletedCallback = { _, _, requestContext, _ in
            guard let requestContext, let state = requestContext.pointee else { return }
            Unmanaged<RequestState>.fromOpaque(state).release()
            requestContext.pointee = nil
        }

        /// Pulls the next bytes of a streamed body.
        static let streamReader: MHD_ContentReaderCallback = { cls, _, buffer, max in
            guard let cls, let buffer else { return Int(SG_MHD_CONTENT_READER_END_WITH_ERROR) }
            let source = Unmanaged<StreamSource>.fromOpaque(cls).takeUnretainedValue()
            return source.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: max))
        }

        /// MHD destroyed a streamed response: drop its retain, mark it released.
        static let streamFree: MHD_ContentReaderFreeCallback = { cls in
            guard let cls else { return }
            Unmanaged<StreamSource>.fromOpaque(cls).takeRetainedValue().release()
        }

        /// Routes MHD's diagnostics (`MHD_USE_ERROR_LOG`) to the server's logger.
        static let logger: MHD_LogCallback = { cls, format, arguments in
            guard let cls, let format, let arguments else { return }
            let context = Unmanaged<Context>.fromOpaque(cls).takeUnretainedValue()
            var text = [CChar](repeating: 0, count: 1024)
            _ = vsnprintf(&text, text.count, format, arguments)
            let message = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            context.logger.info("libmicrohttpd: \(message.trimmingCharacters(in: ["\n"]))")
        }

        private static let collectPair: MHD_KeyValueIteratorN = { cls, _, key, keySize, value, valueSize in
            guard let cls else { return .NO }
            let pairs = cls.assumingMemoryBound(to: [(String, String?)].self)
            let text = { (pointer: UnsafePointer<CChar>?, size: Int) -> String? in
                pointer.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: size), as: UTF8.self) }
            }
            pairs.pointee.append((text(key, keySize) ?? "", text(value, valueSize)))
            return .YES
        }

        private static func pairs(of connection: OpaquePointer, kind: MHD_ValueKind) -> [(String, String?)] {
            var pairs: [(String, String?)] = []
            withUnsafeMutablePointer(to: &pairs) { _ = MHD_get_connection_values_n(connection, kind, collectPair, $0) }
            return pairs
        }
    }
}

extension String {
    /// The string without leading and trailing characters in `set`.
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
