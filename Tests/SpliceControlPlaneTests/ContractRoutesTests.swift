import Foundation
import SpliceDataPlane
import SpliceTestSupport
import Testing

@testable import SpliceControlPlane

/// One operation: a method and a path whose parameters are blanked (`/a/{}/b`).
struct Operation: Hashable, CustomStringConvertible {
    let method: String
    let path: String

    init(_ method: String, _ pattern: String) {
        self.method = method.uppercased()
        self.path = pattern.replacing(#/\{[^}]*\}/#, with: "{}")
    }

    var description: String { "\(method) \(path)" }
}

/// The operations under `paths:` of a block-style OpenAPI YAML document. Strict: a line of
/// a shape it does not know fails the read, so that nothing is silently skipped.
func specOperations(_ yaml: String) throws -> Set<Operation> {
    let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
    let pathLevelKeys: Set<String> = ["parameters", "summary", "description", "servers"]
    var operations: Set<Operation> = []
    var inPaths = false
    var path: String?
    for (number, line) in yaml.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let trimmed = line.drop { $0 == " " }
        if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
        let indent = line.count - trimmed.count
        let key = trimmed.prefix { $0 != ":" }
        let rest = trimmed.dropFirst(key.count).dropFirst().trimmingPrefix(" ")
        switch indent {
        case 0:
            inPaths = line == "paths:"
            path = nil
        case 2 where inPaths:
            let name = key.filter { $0 != "'" && $0 != "\"" }
            guard name.hasPrefix("/"), rest.isEmpty else { throw SpecError(line: number + 1, text: String(line)) }
            path = String(name)
        case 4 where inPaths:
            guard let path else { throw SpecError(line: number + 1, text: String(line)) }
            if methods.contains(String(key)), rest.isEmpty {
                operations.insert(Operation(String(key), path))
            } else if !pathLevelKeys.contains(String(key)) {
                throw SpecError(line: number + 1, text: String(line))
            }
        default:
            continue
        }
    }
    return operations
}

/// A line of the spec the reader does not understand.
struct SpecError: Error, CustomStringConvertible {
    let line: Int
    let text: String
    var description: String { "openapi.yaml line \(line): unexpected shape under paths: \(text)" }
}

/// What differs between the router and the spec: operations only in one of them. The
/// console's files, one route each (`GET /app.js`), are the spec's one `GET /{file}`.
func contractDrift(router: [Operation], spec: Set<Operation>, consoleFiles: Set<String>)
    -> (undocumented: [Operation], unserved: [Operation])
{
    let code = Set(router.map { $0.method == "GET" && consoleFiles.contains($0.path) ? Operation("GET", "/{file}") : $0 })
    let sorted = { (operations: Set<Operation>) in operations.sorted { $0.description < $1.description } }
    return (sorted(code.subtracting(spec)), sorted(spec.subtracting(code)))
}

/// The repository root (this file is `Tests/SpliceControlPlaneTests/…`).
private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

@Suite("Contract: router and openapi.yaml")
struct ContractRoutesTests {
    private func apiRoutes() -> [Operation] {
        let group = makeRelayGroup()
        defer { shutdownTestGroup(group) }
        let api = AdminAPI(
            gateway: Gateway(group: group, logger: makeTestLogger()),
            options: .init(webRoot: root.appending(path: "web").path,
                           openAPIFile: root.appending(path: "openapi/openapi.yaml").path, version: "test", token: nil),
            logger: makeTestLogger())
        return api.routes.map { Operation($0.method.rawValue, $0.pattern) }
    }

    /// `/name` for every file in `web/`, as the console handler serves them.
    private func consoleFiles() throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: root.appending(path: "web").path).map { "/\($0)" })
    }

    private func spec() throws -> String {
        try String(contentsOf: root.appending(path: "openapi/openapi.yaml"), encoding: .utf8)
    }

    @Test func everyRouteIsDocumentedAndEveryOperationServed() throws {
        let routes = apiRoutes()
        let operations = try specOperations(spec())
        #expect(routes.count > 20 && operations.count > 20, "routes \(routes.count), spec \(operations.count)")
        let drift = contractDrift(router: routes, spec: operations, consoleFiles: try consoleFiles())
        #expect(drift.undocumented.isEmpty, "routes missing from openapi.yaml: \(drift.undocumented)")
        #expect(drift.unserved.isEmpty, "openapi.yaml operations no route serves: \(drift.unserved)")
    }

    @Test func driftEitherWayIsCaught() throws {
        let routes = apiRoutes()
        let operations = try specOperations(spec())
        let files = try consoleFiles()
        let added = contractDrift(router: routes + [Operation("GET", "/api/v1/sessions/{id}/extra")], spec: operations,
                                  consoleFiles: files)
        #expect(added.undocumented == [Operation("GET", "/api/v1/sessions/{}/extra")] && added.unserved.isEmpty)
        for removed in [Operation("DELETE", "/api/v1/sessions/{id}"), Operation("GET", "/metrics"),
                        Operation("GET", "/{file}")] {
            let drift = contractDrift(router: routes, spec: operations.subtracting([removed]), consoleFiles: files)
            #expect(drift.undocumented == [removed] && drift.unserved.isEmpty)
        }
        let unserved = contractDrift(router: routes.filter { $0.path != "/metrics" }, spec: operations,
                                     consoleFiles: files)
        #expect(unserved.unserved == [Operation("GET", "/metrics")] && unserved.undocumented.isEmpty)
    }

    @Test func readerRefusesShapesItDoesNotKnow() throws {
        #expect(throws: SpecError.self) { try specOperations("paths:\n  /a: {get: {}}\n") }
        #expect(throws: SpecError.self) { try specOperations("paths:\n  /a:\n    $ref: '#/x'\n") }
        #expect(try specOperations("paths:\n  /a/{id}:\n    parameters: []\n    get:\n      x: 1\n")
            == [Operation("GET", "/a/{}")])
    }
}
