import Dispatch
import Foundation
import Synchronization
import Testing

@testable import SpliceControlPlane

#if canImport(Glibc)
import Glibc
#endif

/// Hands the pending answers a handler created to the test that completes them.
final class PendingBox: Sendable {
    let answers = Mutex<[PendingResponse]>([])

    /// The pending answers once `count` have been created (nil after 5 s).
    func wait(for count: Int) -> [PendingResponse]? {
        waitUntil { answers.withLock { $0.count >= count } } ? answers.withLock { $0 } : nil
    }
}

/// The test router plus routes whose answers wait: `/api/v1/slow` until the test completes
/// it, `/api/v1/ready` completed before it is returned, `/api/v1/racy` completed by another
/// thread while the server parks it.
func makePendingRouter(_ box: PendingBox) -> Router {
    var router = makeTestRouter()
    router.addPending(.POST, "/api/v1/slow") { _, _ in
        let pending = PendingResponse()
        box.answers.withLock { $0.append(pending) }
        return pending
    }
    router.addPending(.GET, "/api/v1/ready") { _, _ in
        let pending = PendingResponse()
        pending.complete(.text(200, "at once"))
        return pending
    }
    router.addPending(.GET, "/api/v1/racy") { _, _ in
        let pending = PendingResponse()
        DispatchQueue.global().async { pending.complete(.text(200, "raced")) }
        return pending
    }
    return router
}

@Suite("HTTPServer pending answers", .timeLimit(.minutes(1)))
struct HTTPServerPendingTests {
    @Test func parkedAnswersHoldNoServerThread() throws {
        let box = PendingBox()
        // One server thread: a handler that held it would stall the health probe below.
        try withServer({ $0.threadPoolSize = 1 }, handler: makePendingRouter(box).handle) { server in
            let clients = try (0..<3).map { _ in try RawHTTPClient(port: server.boundPort) }
            for client in clients { try client.send("POST", "/api/v1/slow") }
            let answers = try #require(box.wait(for: 3))
            #expect(try rawRequest(port: server.boundPort, "GET", "/api/v1/health").status == 200)
            #expect(server.liveResources.parked == 3)

            for (index, pending) in answers.enumerated() { pending.complete(.json(200, ["n": .int(Int64(index))])) }
            var seen: Set<Int64> = []
            for client in clients {
                let response = try client.readResponse()
                #expect(response.status == 200)
                #expect(response.header("Content-Type") == "application/json")
                seen.insert(try #require(try response.json()["n"]?.int))
            }
            #expect(seen == [0, 1, 2])
            #expect(waitUntil { server.liveResources == (0, 0) })
        }
    }

    @Test func answerCompletedBeforeParkingIsSentAtOnce() throws {
        try withServer(handler: makePendingRouter(PendingBox()).handle) { server in
            let response = try rawRequest(port: server.boundPort, "GET", "/api/v1/ready")
            #expect(response.status == 200)
            #expect(response.text == "at once")
        }
    }

    @Test func completionRacingTheSuspendIsNeverLost() throws {
        try withServer(handler: makePendingRouter(PendingBox()).handle) { server in
            // One connection per request: every answer carries `Connection: close`.
            for _ in 0..<200 {
                let client = try RawHTTPClient(port: server.boundPort)
                try client.send("GET", "/api/v1/racy")
                let response = try client.readResponse()
                #expect(response.status == 200)
                #expect(response.text == "raced")
            }
        }
    }

    @Test func clientGoneWhileParkedFreesEverything() throws {
        let box = PendingBox()
        try withServer(handler: makePendingRouter(box).handle) { server in
            var client: RawHTTPClient? = try RawHTTPClient(port: server.boundPort)
            try client?.send("POST", "/api/v1/slow")
            let pending = try #require(box.wait(for: 1)?.first)
            let released = Mutex(false)
            pending.onRelease { released.withLock { $0 = true } }
            client = nil
            // MHD does not watch a suspended socket: it learns of the close after the resume.
            pending.complete(.text(200, "nobody listens"))
            #expect(waitUntil { released.withLock { $0 } })
            #expect(waitUntil { server.liveResources == (0, 0) })
            #expect(try rawRequest(port: server.boundPort, "GET", "/api/v1/health").status == 200)
        }
    }

    @Test func stopClosesParkedRequestsUnanswered() throws {
        let box = PendingBox()
        let server = try HTTPServer(
            configuration: .init(host: "127.0.0.1", port: 0), handler: makePendingRouter(box).handle)
        let client = try RawHTTPClient(port: server.boundPort)
        try client.send("POST", "/api/v1/slow")
        let pending = try #require(box.wait(for: 1)?.first)
        let released = Mutex(false)
        pending.onRelease { released.withLock { $0 = true } }
        let start = Date()
        // MHD aborts the process when stopped with a suspended connection.
        server.stop()
        // Generous: abortParked alone may wait 2 s, and 2 busy cores add more.
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(released.withLock { $0 })
        #expect(throws: RawHTTPError.self) { try client.readResponse() }
        // The data plane answering after the server let go touches nothing freed.
        pending.complete(.noContent)
        #expect(server.liveResources == (0, 0))
    }
}
