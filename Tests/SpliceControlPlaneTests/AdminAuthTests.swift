import Foundation
import SpliceCore
import Testing

@testable import SpliceControlPlane

@Suite("AdminAuth", .timeLimit(.minutes(1)))
struct AdminAuthTests {
    let auth = AdminAuth(token: "s3cret")

    private func status(_ method: HTTPMethod, _ target: String, _ headers: HTTPHeaders = HTTPHeaders()) -> Int? {
        auth.reject(HTTPRequest(method: method, target: target, headers: headers))?.status
    }

    @Test func protectsApiAndMetricsButHealth() {
        #expect(status(.GET, "/api/v1/listeners") == 401)
        #expect(status(.POST, "/api/v1/listeners") == 401)
        #expect(status(.GET, "/api/v1/nope") == 401)
        #expect(status(.GET, "/metrics") == 401)
        #expect(status(.GET, "/%61pi/v1/listeners") == 401)
        #expect(status(.GET, "/api/v1/health") == nil)
        #expect(status(.HEAD, "/api/v1/health") == nil)
        #expect(status(.POST, "/api/v1/health") == 401)
        #expect(status(.GET, "/") == nil)
        #expect(status(.GET, "/openapi.yaml") == nil)
        #expect(AdminAuth(token: nil).reject(HTTPRequest(method: .GET, target: "/api/v1/listeners")) == nil)
    }

    @Test func bearerTokenChecks() throws {
        #expect(status(.GET, "/api/v1/listeners", ["Authorization": "Bearer s3cret"]) == nil)
        #expect(status(.GET, "/api/v1/listeners", ["authorization": "bearer s3cret"]) == nil)
        for wrong in ["Bearer s3cre", "Bearer s3cretx", "Basic s3cret", "Bearer", "Bearers3cret", "", "Bearer S3CRET"] {
            #expect(status(.GET, "/api/v1/listeners", ["Authorization": wrong]) == 401, "\(wrong)")
        }
        let response = try #require(auth.reject(HTTPRequest(method: .GET, target: "/metrics")))
        #expect(response.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
        #expect(response.headers["Content-Type"] == "application/problem+json")
    }

    @Test func eventsAcceptQueryToken() {
        #expect(status(.GET, "/api/v1/events?access_token=s3cret") == nil)
        #expect(status(.GET, "/api/v1/events?access_token=nope") == 401)
        #expect(status(.GET, "/api/v1/listeners?access_token=s3cret") == 401)
    }

    @Test func constantTimeEquals() {
        #expect(AdminAuth.constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!AdminAuth.constantTimeEquals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!AdminAuth.constantTimeEquals(Array("abc".utf8), Array("abc\0".utf8)))
        #expect(!AdminAuth.constantTimeEquals([], Array("a".utf8)))
        #expect(AdminAuth.constantTimeEquals([], []))
    }

    @Test func tokenFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sg-token-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ text: String) throws -> String {
            let path = directory.appendingPathComponent(UUID().uuidString).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        #expect(try AdminAuth.readTokenFile(try write("tok\n")) == "tok")
        #expect(try AdminAuth.readTokenFile(try write("tok\r\n\n")) == "tok")
        #expect(try AdminAuth.readTokenFile(try write("t o k")) == "t o k")
        #expect(throws: HTTPServerError.self) { try AdminAuth.readTokenFile(try write("")) }
        #expect(throws: HTTPServerError.self) { try AdminAuth.readTokenFile(try write("\n\n")) }
        #expect(throws: HTTPServerError.self) { try AdminAuth.readTokenFile(directory.path + "/missing") }
    }

    @Test func bindingRule() throws {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"] {
            try AdminAuth.checkBinding(host: host, tokenConfigured: false)
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "::ffff:10.0.0.1"] {
            let error = try #require(throws: HTTPServerError.self) {
                try AdminAuth.checkBinding(host: host, tokenConfigured: false)
            }
            #expect(error.description.contains("token"))
            try AdminAuth.checkBinding(host: host, tokenConfigured: true)
        }
        #expect(throws: HTTPServerError.self) { try AdminAuth.checkBinding(host: "example.com", tokenConfigured: true) }
    }

    @Test func overRealSockets() throws {
        let handler = AdminAuth(token: "s3cret").protect(makeTestRouter().handle)
        try withServer(handler: handler) { server in
            let denied = try rawRequest(port: server.boundPort, "GET", "/api/v1/listeners")
            try expectProblem(denied, 401)
            #expect(denied.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
            let allowed = try rawRequest(
                port: server.boundPort, "GET", "/api/v1/listeners", headers: [("Authorization", "Bearer s3cret")])
            #expect(allowed.status == 200)
            #expect(try rawRequest(port: server.boundPort, "GET", "/api/v1/health").status == 200)
        }
    }
}
