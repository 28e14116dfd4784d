import Foundation
import SpliceCore
import SplicePeerClient
import SpliceDataPlane
import SpliceIO
import SpliceTestSupport
import Synchronization
import Testing

@testable import SpliceControlPlane

#if canImport(Glibc)
import Glibc
#endif

/// A membership the test sets: which nodes are live is an input here (the store that
/// decides it in production is tested end to end with PostgreSQL in Tests/e2e).
private final class FixedMembership: ClusterMembership {
    let localNode: ClusterNode
    let nodes: Mutex<[ClusterNode]>

    init(local: ClusterNode) {
        localNode = local
        nodes = Mutex([local])
    }

    func liveNodes() -> [ClusterNode] { nodes.withLock { $0 } }
}

/// One node: a gateway with its admin server, numbered so its session ids are its own.
private struct Node {
    let name: String
    let gateway: Gateway
    let server: HTTPServer
    let membership: FixedMembership
    let group: RelayLoopGroup
    let client: PeerClient
    let port: Int

    static func start(name: String, number: UInt64, upstream: Int, listenPort: Int = 0) throws -> Node {
        // The admin port must be known before the node is: bind the server first, then
        // build the API that answers on it.
        let group = makeRelayGroup()
        let handler = Mutex<AdminAPI?>(nil)
        let server = try HTTPServer(configuration: .init(host: "127.0.0.1", port: 0)) { request in
            handler.withLock { $0 }!.handle(request)
        }
        let local = ClusterNode(name: name, number: number, adminURL: server.baseURL, version: "test",
                                startedAt: Date(), heartbeatAt: Date(), sessions: 0)
        let membership = FixedMembership(local: local)
        let gateway = Gateway(group: group, logger: makeTestLogger(), firstSessionNumber: local.firstSessionNumber)
        let client = PeerClient()
        let api = AdminAPI(gateway: gateway, options: .init(
            webRoot: nil, openAPIFile: nil, version: "test", token: nil,
            cluster: ClusterAccess(membership: membership, client: client)), logger: makeTestLogger())
        handler.withLock { $0 = api }
        let listener = try gateway.addListener(ListenerSpec(listen: HostPort(host: "127.0.0.1", port: listenPort),
                                                            upstream: HostPort(host: "127.0.0.1", port: upstream)))
        return Node(name: name, gateway: gateway, server: server, membership: membership, group: group,
                    client: client, port: listener.spec.listen.port)
    }

    var local: ClusterNode { membership.localNode }

    func stop() {
        server.stop()
        gateway.shutdown()
        client.shutdown()
        shutdownTestGroup(group)
    }
}

/// Two nodes that see each other, an echo upstream, and `perNode` clients on each.
private func withCluster(perNode: Int, _ body: (Node, Node, [TestSocket], [TestSocket]) throws -> Void) throws {
    let echo = try TestServer.echo()
    defer { echo.stop() }
    let a = try Node.start(name: "a", number: 1, upstream: echo.port)
    defer { a.stop() }
    let b = try Node.start(name: "b", number: 2, upstream: echo.port)
    defer { b.stop() }
    a.membership.nodes.withLock { $0 = [a.local, b.local] }
    b.membership.nodes.withLock { $0 = [a.local, b.local] }
    let clientsA = try (0..<perNode).map { _ in try TestSocket.connect(port: a.port) }
    let clientsB = try (0..<perNode).map { _ in try TestSocket.connect(port: b.port) }
    for client in clientsA + clientsB {
        try client.send(Array("ping".utf8))
        #expect(try client.receive(exactly: 4) == Array("ping".utf8))
    }
    try body(a, b, clientsA, clientsB)
}

/// Node 3 ("c") in `node`'s view, whose admin API accepts connections and never answers
/// (a node that still heartbeats but is stopped or cut off).
private struct SilentNode {
    let server: TestServer
    private let release = Latch()

    init(joining node: Node) throws {
        let release = release
        server = try TestServer { _ in _ = release.wait(timeout: 60) }
        let port = server.port
        node.membership.nodes.withLock {
            $0.append(ClusterNode(name: "c", number: 3, adminURL: "http://127.0.0.1:\(port)", version: "test",
                                  startedAt: Date(), heartbeatAt: Date(), sessions: 0))
        }
    }

    func stop() {
        release.open()
        server.stop()
    }
}

private func getJSON(_ node: Node, _ target: String) throws -> (Int, JSON) {
    let response = try rawRequest(port: node.server.boundPort, "GET", target)
    return (response.status, try response.json())
}

@Suite("cluster: listing, forwarding and events across nodes")
struct ClusterAccessTests {
    @Test("either node lists both nodes' sessions, paged exactly by the merged cursor")
    func mergedListing() throws {
        try withCluster(perNode: 3) { a, b, _, _ in
            for node in [a, b] {
                var seen: [String] = []
                var cursor: String?
                var pages = 0
                repeat {
                    let target = "/api/v1/sessions?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                    let (status, body) = try getJSON(node, target)
                    #expect(status == 200)
                    let sessions = try #require(body["sessions"]?.array)
                    #expect(sessions.count <= 2)
                    for session in sessions {
                        seen.append(try #require(session["id"]?.string))
                        let owner = try #require(session["node"]?.string)
                        let id = try #require(SessionID(session["id"]?.string ?? ""))
                        #expect(owner == (ClusterNode.owner(of: id) == 1 ? "a" : "b"))
                    }
                    cursor = body["next_cursor"]?.string
                    pages += 1
                } while cursor != nil && pages < 10
                #expect(seen.count == 6, "\(seen)")
                #expect(Set(seen).count == 6)
                #expect(seen.filter { ClusterNode.owner(of: SessionID($0)!) == 1 }.count == 3)
                // scope=local is one node's own.
                let (_, own) = try getJSON(node, "/api/v1/sessions?scope=local")
                #expect(own["sessions"]?.array?.count == 3)
            }
        }
    }

    @Test("a page is filled from the nodes in id order: a node after a full page is not asked")
    func pagesAskOnlyTheNodesTheyNeed() throws {
        try withCluster(perNode: 2) { a, _, _, _ in
            // Node 3 is in a's view, but its API accepts and never answers.
            let silent = try SilentNode(joining: a)
            defer { silent.stop() }
            let (_, first) = try getJSON(a, "/api/v1/sessions?limit=3")
            #expect(first["sessions"]?.array?.compactMap { $0["node"]?.string } == ["a", "a", "b"])
            #expect(first["unreachable_nodes"] == nil)
            #expect(silent.server.accepted == 0)
            // The rest of b, then c, which does not answer: named, and the listing ends.
            let cursor = try #require(first["next_cursor"]?.string)
            let (_, second) = try getJSON(a, "/api/v1/sessions?limit=3&cursor=\(cursor)")
            #expect(second["sessions"]?.array?.compactMap { $0["node"]?.string } == ["b"])
            #expect(second["unreachable_nodes"] == ["c"])
            #expect(second["next_cursor"] == .null)
        }
    }

    @Test("an action on another node's session is carried out there, with its answer")
    func forwardedActions() throws {
        try withCluster(perNode: 1) { a, b, _, clientsB in
            let (_, list) = try getJSON(b, "/api/v1/sessions?scope=local")
            let id = try #require(list["sessions"]?.array?.first?["id"]?.string)
            let direct = try rawRequest(port: b.server.boundPort, "GET", "/api/v1/sessions/\(id)")
            let forwarded = try rawRequest(port: a.server.boundPort, "GET", "/api/v1/sessions/\(id)")
            #expect(forwarded.status == 200)
            #expect(try forwarded.json()["id"] == .string(id))
            #expect(try forwarded.json()["node"] == .string("b"))
            #expect(try forwarded.json()["client"] == (try direct.json())["client"])
            // A bad body is the owner's 4xx, passed back as it is.
            let bad = try rawRequest(port: a.server.boundPort, "POST", "/api/v1/sessions/\(id)/mediators",
                                     headers: [("Content-Type", "application/json")], body: Array("{".utf8))
            try expectProblem(bad, 400)
            // Killed through a, ended on b: the client sees the end.
            let kill = try rawRequest(port: a.server.boundPort, "DELETE", "/api/v1/sessions/\(id)")
            #expect(kill.status == 204)
            clientsB[0].setTimeout(10)
            #expect(try clientsB[0].receiveAll().isEmpty)
            #expect(eventually { b.gateway.sessionCount == 0 })
            // An id no live node owns is unknown everywhere.
            try expectProblem(try rawRequest(port: a.server.boundPort, "GET", "/api/v1/sessions/s7000000000001"), 404)
        }
    }

    @Test("a node that cannot be reached is named, and the others are still listed")
    func unreachableNode() throws {
        try withCluster(perNode: 2) { a, b, _, _ in
            b.server.stop()
            let (status, body) = try getJSON(a, "/api/v1/sessions")
            #expect(status == 200)
            #expect(body["sessions"]?.array?.count == 2)
            #expect(body["unreachable_nodes"] == .array([.string("b")]))
            let (_, list) = try getJSON(a, "/api/v1/sessions?scope=local")
            #expect(list["unreachable_nodes"] == nil)
            let gone = try rawRequest(port: a.server.boundPort, "GET", "/api/v1/sessions/s2000000000001")
            try expectProblem(gone, 502)
        }
    }

    @Test("a request waiting on a node that then leaves the view is answered 502; an action's may still happen")
    func requestToANodeThatLeaves() throws {
        try withCluster(perNode: 0) { a, _, _, _ in
            // Node 3 heartbeats (it is in a's view) but its admin API accepts and never answers.
            let silent = try SilentNode(joining: a)
            defer { silent.stop() }
            let client = try RawHTTPClient(port: a.server.boundPort, timeoutSeconds: 20)
            try client.send("GET", "/api/v1/sessions/s3000000000001")
            let killer = try RawHTTPClient(port: a.server.boundPort, timeoutSeconds: 20)
            try killer.send("DELETE", "/api/v1/sessions/s3000000000001")
            #expect(eventually { silent.server.accepted >= 2 })
            a.membership.nodes.withLock { $0.removeAll { $0.number == 3 } }
            // Before the timeout (30 s): the exchange ends when its node leaves the view.
            let read = try client.readResponse()
            try expectProblem(read, 502)
            #expect(!read.text.contains("may still be carried out"))
            // A node that comes back may still read and carry out an action sent to it.
            try expectProblem(try killer.readResponse(), 502, detailContains: "may still be carried out")
        }
    }

    @Test("one node's event stream carries the other node's events, with their node")
    func mergedEvents() throws {
        try withCluster(perNode: 0) { a, b, _, _ in
            let stream = try RawHTTPClient(port: a.server.boundPort)
            try stream.send("GET", "/api/v1/events")
            let head = try stream.readResponseHead()
            #expect(head.status == 200)
            // The opening comment comes once a is subscribed to b as well: an event on b
            // right after it must not be missed.
            var text = ""
            while !text.contains(": splicegate events"), let chunk = try stream.readChunk() {
                text += String(decoding: chunk, as: UTF8.self)
            }
            #expect(b.gateway.events.subscriberCount == 1)
            let client = try TestSocket.connect(port: b.port)
            try client.send(Array("x".utf8))
            _ = try client.receive(exactly: 1)
            let deadline = Date().addingTimeInterval(10)
            while !text.contains("\"session.opened\""), Date() < deadline, let chunk = try stream.readChunk() {
                text += String(decoding: chunk, as: UTF8.self)
            }
            let line = try #require(text.split(separator: "\n").first { $0.contains("\"session.opened\"") })
            let event = try JSON.parse(String(line.dropFirst("data: ".count)))
            #expect(event["node"] == .string("b"))
            #expect(event["session"]?["node"] == .string("b"))
            // A second stream on a shares a's one stream from b: b serves a node one stream
            // however many consoles follow a.
            let second = try RawHTTPClient(port: a.server.boundPort)
            try second.send("GET", "/api/v1/events")
            #expect(try second.readResponseHead().status == 200)
            var opening = ""
            while !opening.contains(": splicegate events"), let chunk = try second.readChunk() {
                opening += String(decoding: chunk, as: UTF8.self)
            }
            #expect(b.gateway.events.subscriberCount == 1)
            // A client's forged mark naming no live node changes nothing: still forwarded.
            let sessionID = try #require(event["session"]?["id"]?.string)
            let forged = try rawRequest(port: a.server.boundPort, "GET", "/api/v1/sessions/\(sessionID)",
                                        headers: [("X-Splicegate-Forwarded", "nobody")])
            #expect(forged.status == 200)
        }
    }
}
