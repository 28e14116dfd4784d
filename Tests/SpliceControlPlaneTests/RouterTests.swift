import SpliceCore
import Testing

@testable import SpliceControlPlane

private struct Boom: Error {}

@Suite("Router")
struct RouterTests {
    private func router() -> Router {
        var router = Router()
        router.add(.GET, "/api/v1/sessions/{id}") { _, p in .json(200, ["id": .string(try p.require("id"))]) }
        router.add(.GET, "/api/v1/sessions/stats") { _, _ in .text(200, "stats") }
        router.add(.DELETE, "/api/v1/sessions/{id}/mediators/{hop}") { _, p in
            .json(200, ["id": .string(p["id"] ?? ""), "hop": .string(p["hop"] ?? "")])
        }
        router.add(.POST, "/api/v1/conflict") { _, _ in throw APIError.conflict("busy") }
        router.add(.GET, "/api/v1/boom") { _, _ in throw Boom() }
        router.add(.GET, "/static/{path...}") { _, p in .text(200, p["path"] ?? "") }
        return router
    }

    /// What the router answers at once (every route here is synchronous).
    private func respond(_ request: HTTPRequest) -> HTTPResponse {
        guard case .now(let response) = router().handle(request) else {
            Issue.record("a synchronous route answered later")
            return HTTPResponse(status: 0)
        }
        return response
    }

    private func problem(_ response: HTTPResponse) throws -> JSON {
        #expect(response.headers["content-type"] == "application/problem+json")
        return try JSON.parse(try #require(response.bodyBytes))
    }

    @Test func matchesParametersDecoded() throws {
        let response = respond(HTTPRequest(method: .DELETE, target: "/api/v1/sessions/s%201/mediators/h%2F2"))
        #expect(response.status == 200)
        #expect(try JSON.parse(try #require(response.bodyBytes)) == ["id": "s 1", "hop": "h/2"])
    }

    @Test func literalBeatsParameter() throws {
        let response = respond(HTTPRequest(method: .GET, target: "/api/v1/sessions/stats"))
        #expect(response.bodyBytes == Array("stats".utf8))
        let other = respond(HTTPRequest(method: .GET, target: "/api/v1/sessions/s1?x=1"))
        #expect(try JSON.parse(try #require(other.bodyBytes)) == ["id": "s1"])
    }

    @Test func restParameter() {
        let response = respond(HTTPRequest(method: .GET, target: "/static/css/app.css"))
        #expect(response.bodyBytes == Array("css/app.css".utf8))
        #expect(respond(HTTPRequest(method: .HEAD, target: "/static/")).status == 200)
    }

    @Test func notFound() throws {
        for target in ["/nope", "/api/v1/sessions", "/api/v1/sessions/", "/api/v1/sessions/s1/extra",
                       "/api/v1/sessions/%FF", "/api/v1/sessions/%zz", "//api/v1/sessions/s1"] {
            let response = respond(HTTPRequest(method: .GET, target: target))
            #expect(response.status == 404, "\(target)")
            #expect(try problem(response)["status"] == 404)
        }
    }

    @Test func methodNotAllowedListsAllow() throws {
        let response = respond(HTTPRequest(method: .PATCH, target: "/api/v1/sessions/s1"))
        #expect(response.status == 405)
        #expect(response.headers["Allow"] == "GET, HEAD")
        #expect(try problem(response)["title"] == "Method not allowed")
    }

    @Test func errorsBecomeProblems() throws {
        let conflict = respond(HTTPRequest(
            method: .POST, target: "/api/v1/conflict", headers: ["Content-Type": "application/json"],
            body: Array("{}".utf8)))
        #expect(conflict.status == 409)
        #expect(try problem(conflict)["detail"] == "busy")
        let boom = respond(HTTPRequest(method: .GET, target: "/api/v1/boom"))
        #expect(boom.status == 500)
        #expect(try problem(boom)["type"] == "/problems/internal")
    }

    @Test func bodyMustBeJSON() throws {
        let response = respond(HTTPRequest(
            method: .POST, target: "/api/v1/conflict", headers: ["Content-Type": "text/plain"], body: [1]))
        #expect(response.status == 415)
        let charset = respond(HTTPRequest(
            method: .POST, target: "/api/v1/conflict", headers: ["content-type": "Application/JSON; charset=utf-8"],
            body: Array("{}".utf8)))
        #expect(charset.status == 409)
    }

    @Test("Content-Type: media type compared without case, parameters and spaces ignored")
    func jsonContentTypeVariants() {
        func isJSON(_ value: String?) -> Bool {
            HTTPRequest(method: .POST, target: "/", headers: HTTPHeaders(value.map { [("cOnTeNt-TyPe", $0)] } ?? []),
                        body: []).hasJSONContentType
        }
        for accepted in ["application/json", "Application/JSON", " application/json\t", "application/json;charset=utf-8",
                         "application/json ; charset=utf-8", "\tAPPLICATION/json;"] {
            #expect(isJSON(accepted), "\(accepted)")
        }
        for refused in [nil, "", " ", ";", "application/jsonx", "application/jso", "xapplication/json",
                        "application/ json", "; application/json", "text/plain", "application/json-seq"] {
            #expect(!isJSON(refused), "\(String(describing: refused))")
        }
        var headers = HTTPHeaders([("X-One", "1"), ("x-ONE", "2"), ("Other", "3")])
        #expect(headers["x-one"] == "1")
        #expect(headers.values("X-ONE") == ["1", "2"])
        headers.set("x-one", "4")
        #expect(headers.values("X-One") == ["4"] && headers["other"] == "3" && headers["Othe"] == nil)
    }

    @Test("streamed paths are told apart as routing sees them, percent-escapes decoded")
    func streamedPaths() {
        for streamed in ["/api/v1/events", "/api/v1/%65vents", "/api/v1/sessions/s1/capture",
                         "/api/v1/listeners/l1/%63apture"] {
            #expect(AdminAPI.streamsResponse(Substring(streamed)), "\(streamed)")
        }
        for plain in ["/api/v1/sessions", "/api/v1/events/x", "/api/v1/capture/s1", "/api/v1/sessions/s1/%zz/capture"] {
            #expect(!AdminAPI.streamsResponse(Substring(plain)), "\(plain)")
        }
    }

    @Test func problemBodyIsRFC9457() throws {
        let response = HTTPResponse.problem(.invalid("field 'x' is required"))
        #expect(response.status == 422)
        #expect(String(decoding: try #require(response.bodyBytes), as: UTF8.self)
            == #"{"type":"/problems/invalid-field","title":"Invalid field","status":422,"detail":"field 'x' is required"}"#)
    }
}
