import SpliceCore
import SpliceDataPlane

/// `GET /api/v1/sessions/{id}/capture` and `GET /api/v1/listeners/{id}/capture`: live
/// pcapng, streamed until the session or listener ends or the reader leaves.
///
/// The reader's buffer is the stream's own (`buffer_bytes`): a reader that falls behind
/// loses packets, counted in the file's statistics blocks, and never slows a session.
struct CaptureHandler: Sendable {
    let gateway: Gateway

    /// The media type of the stream.
    static let contentType = "application/x-pcapng"

    func register(in router: inout Router) {
        router.addPending(.GET, "/api/v1/sessions/{id}/capture") { request, parameters in
            let capture = try Self.request(request)
            let id = try parameters.id("id", as: SessionID.self)
            let source = Self.source(for: capture)
            return try gateway.startingCapture(session: id, request: capture, output: source).response { _ in
                Self.response(source)
            }
        }
        router.add(.GET, "/api/v1/listeners/{id}/capture") { request, parameters in
            let capture = try Self.request(request)
            let id = try parameters.id("id", as: ListenerID.self)
            let source = Self.source(for: capture)
            _ = try gateway.startCapture(listener: id, request: capture, output: source)
            return Self.response(source)
        }
    }

    /// The query: `points`, `direction`, `buffer_bytes`; a bad value is a 400.
    static func request(_ request: HTTPRequest) throws(APIError) -> CaptureRequest {
        try request.allowQuery(["points", "direction", "buffer_bytes"])
        var capture = CaptureRequest()
        if let text = request.query("points") {
            guard let points = CaptureRequest.Points(rawValue: text) else {
                throw .malformed("query parameter 'points' must be edges or hops, got '\(text)'")
            }
            capture.points = points
        }
        if let text = request.query("direction") {
            guard let directions = DirectionSelection(rawValue: text) else {
                throw .malformed("query parameter 'direction' must be client_to_server, server_to_client or both, got '\(text)'")
            }
            capture.directions = directions
        }
        if let text = request.query("buffer_bytes") {
            let range = CaptureRequest.bufferBytesRange
            guard let bytes = Int(text), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), range.contains(bytes) else {
                throw .malformed("query parameter 'buffer_bytes' must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
            }
            capture.bufferBytes = bytes
        }
        return capture
    }

    private static func source(for capture: CaptureRequest) -> StreamSource {
        StreamSource(maxBufferedBytes: capture.bufferBytes, blockSize: 64 * 1024)
    }

    private static func response(_ source: StreamSource) -> HTTPResponse {
        var response = HTTPResponse.stream(source, contentType: contentType)
        response.headers.set("X-Accel-Buffering", "no")
        response.headers.set("Content-Disposition", "attachment; filename=\"splicegate.pcapng\"")
        return response
    }
}

/// The admin stream is where a capture's file goes.
extension StreamSource: CaptureOutput {
    public func append(_ bytes: [UInt8]) {
        writeRegardless(bytes)
    }

    public func onReaderGone(_ body: @escaping @Sendable () -> Void) {
        onRelease(body)
    }
}
