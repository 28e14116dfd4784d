import Foundation
import SplicePeerClient
import SpliceTestSupport
import Synchronization
import Testing

/// The client one node uses to reach another, against raw servers that misbehave.
@Suite("peer client")
struct PeerClientTests {
    /// Reads the request head, then runs `answer` on the socket.
    private func server(_ answer: @escaping @Sendable (TestSocket) -> Void) throws -> TestServer {
        try TestServer { socket in
            var head: [UInt8] = []
            while !head.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)), let chunk = try? socket.receive(max: 1), !chunk.isEmpty {
                head += chunk
            }
            answer(socket)
        }
    }

    private func send(_ port: Int, timeout: TimeAmountSeconds = 5) async -> Result<PeerClient.Response, PeerClient.Failure> {
        let client = PeerClient()
        defer { client.shutdown() }
        return await client.send(.init(method: "GET", baseURL: "http://127.0.0.1:\(port)", target: "/x"),
                                 timeout: .seconds(timeout))
    }

    typealias TimeAmountSeconds = Int64

    @Test("a whole answer comes back with its status, fields and body")
    func wholeAnswer() async throws {
        let peer = try server { socket in
            try? socket.send(Array("HTTP/1.1 409 Conflict\r\nContent-Type: application/problem+json\r\nContent-Length: 2\r\n\r\n{}".utf8))
        }
        defer { peer.stop() }
        let response = try await send(peer.port).get()
        #expect(response.status == 409)
        #expect(response.header("content-type") == "application/problem+json")
        #expect(response.body == Array("{}".utf8))
    }

    @Test("an answer over the 64 MiB cap fails instead of waiting forever")
    func oversizedAnswerFails() async throws {
        let peer = try server { socket in
            try? socket.send(Array("HTTP/1.1 200 OK\r\nContent-Length: 70000000\r\n\r\n".utf8))
            let block = [UInt8](repeating: 0x61, count: 1 << 20)
            for _ in 0..<67 where (try? socket.send(block)) != nil {}
        }
        defer { peer.stop() }
        let result = await send(peer.port, timeout: 60)
        guard case .failure(let failure) = result else { Issue.record("an oversized answer was accepted"); return }
        #expect(failure.description.contains("larger than 64 MiB"))
    }

    @Test("a peer that accepts and never answers fails at the timeout")
    func silentPeerTimesOut() async throws {
        let release = Latch()
        let peer = try server { _ in _ = release.wait(timeout: 30) }
        defer {
            release.open()
            peer.stop()
        }
        guard case .failure(let failure) = await send(peer.port, timeout: 1) else {
            Issue.record("a silent peer answered"); return
        }
        #expect(failure.description.contains("no complete answer"))
    }

    @Test("a peer that closes before the end of its answer is a failure")
    func truncatedAnswerFails() async throws {
        let peer = try server { socket in
            try? socket.send(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8))
            socket.close()
        }
        defer { peer.stop() }
        guard case .failure = await send(peer.port) else { Issue.record("a truncated answer was accepted"); return }
    }

    @Test("nothing listening is a failure, not a hang")
    func nobodyListening() async throws {
        let port = try freePort()
        guard case .failure(let failure) = await send(port) else { Issue.record("answered from nowhere"); return }
        #expect(failure.description.contains("cannot reach"))
    }
}
