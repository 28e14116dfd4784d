import Foundation
import SpliceCore
import Synchronization
import Testing

@testable import SpliceControlPlane

#if canImport(Glibc)
import Glibc
#endif

/// Hands the stream a handler created to the test that drives it.
final class StreamBox: Sendable {
    let sources = Mutex<[StreamSource]>([])
    func next(timeoutSeconds: Double = 5) -> StreamSource? {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let source = sources.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return source }
            usleep(2_000)
        }
        return nil
    }
}

func makeTestRouter(streams: StreamBox = StreamBox()) -> Router {
    var router = Router()
    router.add(.GET, "/api/v1/health") { _, _ in .json(200, ["status": "ok"]) }
    router.add(.GET, "/api/v1/listeners") { _, _ in .json(200, ["listeners": []]) }
    router.add(.POST, "/api/v1/listeners") { request, _ in
        let body = try request.jsonObject(allowed: ["listen", "name"])
        return .json(201, ["listen": .string(try body.requiredString("listen"))])
    }
    router.add(.GET, "/api/v1/listeners/{id}") { _, parameters in
        .json(200, ["id": .string(try parameters.require("id"))])
    }
    router.add(.DELETE, "/api/v1/listeners/{id}") { _, _ in .noContent }
    router.add(.GET, "/api/v1/echo") { request, _ in
        var query = JSONObject()
        for (name, value) in request.queryItems { query[name] = .string(value) }
        return .json(200, [
            "path": .string(request.path), "query": .object(query),
            "x-test": .string(request.headers["x-TEST"] ?? ""), "remote": .string(request.remoteAddress),
        ])
    }
    router.add(.GET, "/api/v1/events") { _, _ in
        let source = StreamSource()
        streams.sources.withLock { $0.append(source) }
        return .stream(source)
    }
    return router
}

/// Runs `body` against a server on 127.0.0.1:0 and always stops it.
func withServer(
    _ configure: (inout HTTPServer.Configuration) -> Void = { _ in },
    handler: HTTPServer.Handler? = nil, streams: StreamBox = StreamBox(),
    _ body: (HTTPServer) throws -> Void
) throws {
    var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
    configure(&configuration)
    let router = makeTestRouter(streams: streams)
    let server = try HTTPServer(configuration: configuration, handler: handler ?? router.handle)
    defer {
        server.stop()
        // After stop every request state and stream must have been freed.
        #expect(server.liveResources == (0, 0))
    }
    try body(server)
}

/// Checks an RFC 9457 answer: status, media type and members.
func expectProblem(_ response: RawResponse, _ status: Int, detailContains: String? = nil) throws {
    #expect(response.status == status, "\(response.status) \(response.text)")
    #expect(response.header("Content-Type") == "application/problem+json")
    let problem = try response.json()
    #expect(problem["status"] == .int(Int64(status)))
    #expect(problem["type"]?.string?.hasPrefix("/problems/") == true)
    #expect(problem["title"]?.string?.isEmpty == false)
    if let detailContains {
        let detail = try #require(problem["detail"]?.string)
        #expect(detail.contains(detailContains), "detail: \(detail)")
    }
}

@Suite("HTTPServer", .timeLimit(.minutes(1)))
struct HTTPServerTests {
    @Test func bindsEphemeralPortAndAnswersJSON() throws {
        try withServer { server in
            #expect(server.boundPort > 0)
            #expect(server.boundHost == "127.0.0.1")
            let response = try rawRequest(port: server.boundPort, "GET", "/api/v1/health")
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text == #"{"status":"ok"}"#)
        }
    }

    @Test func eachConnectionCarriesOneRequest() throws {
        // Keep-alive would let a second head reach MHD without the acceptor's
        // checks: the answer says close, and the server closes.
        try withServer { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send("GET", "/api/v1/listeners/a%2Fb", close: false)
            let response = try client.readResponse()
            #expect(response.status == 200)
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(try response.json()["id"]?.string == "a/b")
            #expect(client.isClosedByPeer())
        }
    }

    @Test func queryHeadersAndRemoteAddress() throws {
        try withServer { server in
            let response = try rawRequest(
                port: server.boundPort, "GET", "/api/v1/echo?a=1&b=x%20y+z&c=%C3%A9&flag",
                headers: [("X-Test", "hello")])
            let json = try response.json()
            #expect(json["path"] == "/api/v1/echo")
            #expect(json["query"] == ["a": "1", "b": "x y z", "c": "é", "flag": ""])
            #expect(json["x-test"] == "hello")
            #expect(json["remote"]?.string?.hasPrefix("127.0.0.1:") == true)
        }
    }

    @Test func headIsServedByGetWithoutBody() throws {
        try withServer { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send("HEAD", "/api/v1/health")
            let response = try client.readResponseHead()
            #expect(response.status == 200)
            #expect(client.isClosedByPeer())
            #expect(response.header("Content-Length") == "15")
        }
    }

    @Test func createdAndNoContent() throws {
        try withServer { server in
            let created = try rawRequest(
                port: server.boundPort, "POST", "/api/v1/listeners",
                headers: [("Content-Type", "application/json; charset=utf-8")],
                body: Array(#"{"listen":"127.0.0.1:0"}"#.utf8))
            #expect(created.status == 201)
            #expect(try created.json() == ["listen": "127.0.0.1:0"])
            let deleted = try rawRequest(port: server.boundPort, "DELETE", "/api/v1/listeners/l1")
            #expect(deleted.status == 204)
            #expect(deleted.body.isEmpty)
        }
    }

    @Test func malformedJSONIs400WithLineAndColumn() throws {
        try withServer { server in
            let response = try rawRequest(
                port: server.boundPort, "POST", "/api/v1/listeners", headers: [("Content-Type", "application/json")],
                body: Array("{\n  \"listen\": tru\n}".utf8))
            try expectProblem(response, 400, detailContains: "line 2, column")
        }
    }

    @Test func notFoundAndMethodNotAllowed() throws {
        try withServer { server in
            try expectProblem(try rawRequest(port: server.boundPort, "GET", "/api/v1/nope"), 404)
            try expectProblem(try rawRequest(port: server.boundPort, "GET", "/api/v1/listeners/%FF"), 404)
            let wrong = try rawRequest(port: server.boundPort, "PUT", "/api/v1/listeners/l1")
            try expectProblem(wrong, 405)
            #expect(wrong.header("Allow") == "DELETE, GET, HEAD")
        }
    }

    @Test func unsupportedMediaTypeAndUnknownField() throws {
        try withServer { server in
            let body = Array(#"{"listen":"127.0.0.1:0"}"#.utf8)
            for contentType in ["text/plain", "application/jsonx", "application/x-www-form-urlencoded"] {
                let response = try rawRequest(
                    port: server.boundPort, "POST", "/api/v1/listeners", headers: [("Content-Type", contentType)],
                    body: body)
                try expectProblem(response, 415)
            }
            try expectProblem(try rawRequest(port: server.boundPort, "POST", "/api/v1/listeners", body: body), 415)
            let unknown = try rawRequest(
                port: server.boundPort, "POST", "/api/v1/listeners", headers: [("Content-Type", "application/json")],
                body: Array(#"{"listen":"127.0.0.1:0","lisen":1}"#.utf8))
            try expectProblem(unknown, 422, detailContains: "unknown field 'lisen'")
            let notObject = try rawRequest(
                port: server.boundPort, "POST", "/api/v1/listeners", headers: [("Content-Type", "application/json")],
                body: Array("[1]".utf8))
            try expectProblem(notObject, 422, detailContains: "body must be a JSON object")
        }
    }

    @Test func bodyOverCapIs413() throws {
        try withServer { server in
            let body = [UInt8](repeating: UInt8(ascii: "a"), count: 70 * 1024)
            let declared = try rawRequest(
                port: server.boundPort, "POST", "/api/v1/listeners", headers: [("Content-Type", "application/json")],
                body: body)
            try expectProblem(declared, 413)
            // Chunked: no length up front, so the cap is enforced while reading.
            let client = try RawHTTPClient(port: server.boundPort)
            var request = Array(
                "POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    .utf8)
            for _ in 0..<7 { request += Array("2800\r\n".utf8) + body.prefix(0x2800) + Array("\r\n".utf8) }
            request += Array("0\r\n\r\n".utf8)
            try client.send(request)
            try expectProblem(try client.readResponse(), 413)
        }
    }

    @Test func twentyKiBTargetIs414ProblemJSON() throws {
        try withServer { server in
            let longPath = "/api/v1/listeners/" + String(repeating: "a", count: 20 * 1024)
            try expectProblem(try rawRequest(port: server.boundPort, "GET", longPath), 414)
            let longQuery = "/api/v1/listeners?x=" + String(repeating: "a", count: 20 * 1024)
            try expectProblem(try rawRequest(port: server.boundPort, "GET", longQuery), 414)
        }
    }

    @Test func oversizedHeadersAre431ProblemJSON() throws {
        try withServer({ $0.maxHeaderBytes = 16 * 1024 }) { server in
            let headers = (0..<20).map { ("X-Pad-\($0)", String(repeating: "v", count: 1024)) }
            try expectProblem(try rawRequest(port: server.boundPort, "GET", "/api/v1/health", headers: headers), 431)
        }
        // With the default 32 KiB header cap, 20 KiB of headers are fine.
        try withServer { server in
            let headers = (0..<20).map { ("X-Pad-\($0)", String(repeating: "v", count: 1024)) }
            let response = try rawRequest(port: server.boundPort, "GET", "/api/v1/health", headers: headers)
            #expect(response.status == 200)
        }
    }

    @Test func headersUpToThePoolAndBeyondAre431ProblemJSON() throws {
        try withServer { server in
            let headers = (0..<100).map { ("X-Pad-\($0)", String(repeating: "v", count: 1000)) }
            try expectProblem(try rawRequest(port: server.boundPort, "GET", "/api/v1/health", headers: headers), 431)
            // Past connectionMemoryLimit MHD used to answer by itself (HTML);
            // the acceptor now refuses such a head before MHD sees it.
            let huge = (0..<200).map { ("X-Pad-\($0)", String(repeating: "v", count: 1000)) }
            try expectProblem(try rawRequest(port: server.boundPort, "GET", "/api/v1/health", headers: huge), 431)
        }
    }

    /// Requests that fit a compact pool go to the daemons with compact memory pools, others
    /// to the daemon with large ones, and those that fit neither get a 431 from the acceptor.
    /// For each shape that costs MHD pool records (header lines, cookies, query arguments):
    /// the largest request that fits the compact pool and the smallest that does not are
    /// answered by the handler, as is the largest the acceptor lets through at all; the next
    /// one gets problem+json. Never MHD's own HTML page (its answer to a pool overflow).
    @Test func requestsEitherSideOfThePoolBoundariesAreAnswered() throws {
        let configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        let screen = RequestHeadScreen(maxTargetBytes: configuration.maxTargetBytes,
                                       maxHeaderBytes: configuration.maxHeaderBytes, maxBodyBytes: configuration.maxBodyBytes)
        let admitted = { (request: [UInt8]) in
            request.withUnsafeBytes { screen.verdict($0, peerClosed: false) == .accept }
                && Self.fits(request, pool: configuration.connectionMemoryLimit)
        }
        let head = { (target: String, fields: String) in
            Array("GET \(target) HTTP/1.1\r\nHost: test\r\n\(fields)Connection: close\r\n\r\n".utf8)
        }
        let shapes: [(name: String, make: (Int) -> [UInt8])] = [
            ("header lines", { n in
                head("/api/v1/echo", (0..<97).map { "X-Pad-\($0): \(String(repeating: "v", count: n))\r\n" }.joined())
            }),
            ("cookies", { n in head("/api/v1/echo", "Cookie: " + (0..<n).map { "c\($0)=1" }.joined(separator: "; ") + "\r\n") }),
            ("cookies split by commas", { n in
                head("/api/v1/echo", "Cookie: " + (0..<n).map { "c\($0)=1" }.joined(separator: ",") + "\r\n")
            }),
            ("query arguments", { n in head("/api/v1/echo?" + (0..<n).map { "a\($0)=1" }.joined(separator: "&"), "") }),
        ]
        try withServer { server in
            for shape in shapes {
                var compact = 1
                while Self.fits(shape.make(compact + 1), pool: configuration.compactConnectionMemory) { compact += 1 }
                var most = compact
                while admitted(shape.make(most + 1)) { most += 1 }
                for (what, n, answered) in [("largest compact", compact, true), ("smallest not compact", compact + 1, true),
                                            ("largest admitted", most, true), ("smallest refused", most + 1, false)] {
                    // Empty lines before the request line are allowed, and must not hide the head
                    // from the estimate; they move the boundaries by their 4 bytes, so either
                    // proper answer will do for them.
                    for leading in ["", "\r\n\r\n"] {
                        let request = Array(leading.utf8) + shape.make(n)
                        let client = try RawHTTPClient(port: server.boundPort)
                        try client.send(request)
                        let response = try client.readResponse()
                        let ok = response.status == 200 && response.header("Content-Type") == "application/json"
                        let refused = [414, 431].contains(response.status)
                            && response.header("Content-Type") == "application/problem+json"
                        let expected = leading.isEmpty ? (answered ? ok : refused) : (ok || refused)
                        let context = "\(shape.name), \(what), \(leading.count) leading bytes (\(request.count) bytes)"
                        #expect(expected, "\(context): \(response.status) \(response.text.prefix(80))")
                    }
                }
            }
        }
    }

    private static func fits(_ request: [UInt8], pool: Int) -> Bool {
        request.withUnsafeBytes { MHDPoolNeed.fits($0, pool: pool) }
    }

    /// Heads within the size limits whose query arguments or cookies would overflow even
    /// the large pool: MHD answered the arguments never (the client waited for ever) and
    /// the cookies with its own HTML 431. Now the acceptor answers 431 problem+json.
    @Test func headsWithMoreFieldsThanAnyPoolHoldsAre431ProblemJSON() throws {
        try withServer { server in
            let arguments = "/api/v1/health?" + String(repeating: "a&", count: 2040)
            try expectProblem(try rawRequest(port: server.boundPort, "GET", arguments), 431, detailContains: "cookies")
            let cookies = [("Cookie", (0..<1800).map { _ in "a=1" }.joined(separator: "; "))]
            try expectProblem(try rawRequest(port: server.boundPort, "GET", "/api/v1/health", headers: cookies), 431)
            // The same after empty lines, which once made the estimate see an empty head and send
            // any head to a compact pool: 600 arguments got no answer there.
            for (count, status) in [(600, 200), (2040, 431)] {
                let client = try RawHTTPClient(port: server.boundPort)
                let target = "/api/v1/health?" + String(repeating: "a&", count: count)
                try client.send(Array("\r\n\r\nGET \(target) HTTP/1.1\r\nHost: t\r\n\r\n".utf8))
                let response = try client.readResponse()
                #expect(response.status == status, "\(count) arguments: \(response.status) \(response.text.prefix(80))")
            }
            // The server is fine afterwards.
            #expect(try rawRequest(port: server.boundPort, "GET", "/api/v1/health").status == 200)
        }
    }

    @Test func smuggledRequestBehindAmbiguousFramingIsNeverAnswered() throws {
        try withServer { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send(Array((
                "POST /api/v1/listeners HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "0\r\n\r\nGET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n").utf8))
            try expectProblem(try client.readResponse(), 400)
            #expect(client.isClosedByPeer())
        }
    }

    @Test func stopFreesThePort() throws {
        var configuration = HTTPServer.Configuration(host: "127.0.0.1", port: 0)
        let first = try HTTPServer(configuration: configuration, handler: makeTestRouter().handle)
        let port = first.boundPort
        #expect(try rawRequest(port: port, "GET", "/api/v1/health").status == 200)
        first.stop()
        first.stop()
        #expect(throws: RawHTTPError.self) { try rawRequest(port: port, "GET", "/api/v1/health") }
        configuration.port = port
        let second = try HTTPServer(configuration: configuration, handler: makeTestRouter().handle)
        defer { second.stop() }
        #expect(second.boundPort == port)
        #expect(throws: HTTPServerError.self) { try HTTPServer(configuration: configuration) { _ in .now(.noContent) } }
    }

    @Test func bindsIPv6LoopbackAndLocalhost() throws {
        try withServer({ $0.host = "localhost" }) { server in
            #expect(server.boundHost == "127.0.0.1")
        }
        try withServer({ $0.host = "::1" }) { server in
            #expect(server.boundHost == "::1")
            #expect(server.baseURL == "http://[::1]:\(server.boundPort)")
            let client = try RawHTTPClient(host: "::1", port: server.boundPort)
            try client.send("GET", "/api/v1/echo")
            #expect(try client.readResponse().json()["remote"]?.string?.hasPrefix("[::1]:") == true)
        }
        #expect(throws: HTTPServerError.self) {
            try HTTPServer(configuration: .init(host: "example.com", port: 0)) { _ in .now(.noContent) }
        }
    }
}
