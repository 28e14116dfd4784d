import Foundation
import Synchronization
import Testing

@testable import SpliceControlPlane

#if canImport(Glibc)
import Glibc
#endif

@Suite("HTTPServer streaming", .timeLimit(.minutes(1)))
struct HTTPServerStreamTests {
    @Test func streamsChunksAcrossIdlePeriods() throws {
        let streams = StreamBox()
        try withServer(streams: streams) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send("GET", "/api/v1/events")
            let source = try #require(streams.next())
            // Nothing queued yet: the connection is parked, the head not sent.
            #expect(source.write(Array("data: one\n\n".utf8)))
            let head = try client.readResponseHead()
            #expect(head.status == 200)
            #expect(head.header("Content-Type") == "text/event-stream")
            #expect(head.header("Transfer-Encoding") == "chunked")
            #expect(try client.readChunk() == Array("data: one\n\n".utf8))

            // Idle for a while (the connection is suspended), then writes must wake it. Whether
            // it spins while idle is a CPU measurement: bench/, not a test that other tests'
            // load would make flaky.
            usleep(300_000)

            for index in 2...4 {
                let event = Array("data: \(index)\n\n".utf8)
                #expect(source.write(event))
                #expect(try client.readChunk() == event)
            }
            source.finish()
            #expect(try client.readChunk() == nil)
            #expect(waitUntil { source.isReleased })
            #expect(!source.write([1]))
        }
    }

    @Test func clientGoneReleasesTheStream() throws {
        let streams = StreamBox()
        try withServer(streams: streams) { server in
            var client: RawHTTPClient? = try RawHTTPClient(port: server.boundPort)
            try client?.send("GET", "/api/v1/events")
            let source = try #require(streams.next())
            let released = Mutex(false)
            source.onRelease { released.withLock { $0 = true } }
            #expect(source.write(Array("data: hi\n\n".utf8)))
            _ = try client?.readResponseHead()
            client = nil
            // A parked connection learns of the close at its next write.
            #expect(waitUntil {
                _ = source.write(Array("data: ping\n\n".utf8))
                return released.withLock { $0 }
            })
            #expect(source.isReleased)
        }
    }

    /// A path the configuration marks as streamed gets the large memory pool, where MHD
    /// fills each chunk up to the stream's 64 KiB block size; in a compact pool a chunk is
    /// cut to the pool's free space (under 32 KiB), which halved a live capture's rate.
    @Test func streamedPathsGetFullChunks() throws {
        let streams = StreamBox()
        var router = Router()
        router.add(.GET, "/api/v1/big") { _, _ in
            let source = StreamSource(maxBufferedBytes: 1 << 20, blockSize: 64 * 1024)
            streams.sources.withLock { $0.append(source) }
            return .stream(source)
        }
        try withServer({ $0.streamsResponse = { $0 == "/api/v1/big" } }, handler: router.handle) { server in
            let client = try RawHTTPClient(port: server.boundPort)
            try client.send("GET", "/api/v1/big?from=start")
            let source = try #require(streams.next())
            let sent = (0..<(512 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            #expect(source.write(sent))
            source.finish()
            #expect(try client.readResponseHead().status == 200)
            var received: [UInt8] = []
            var largest = 0
            while let chunk = try client.readChunk() {
                received += chunk
                largest = max(largest, chunk.count)
            }
            #expect(received == sent)
            #expect(largest >= 48 * 1024, "largest chunk \(largest) bytes")
        }
    }

    @Test func stopEndsParkedStreams() throws {
        let streams = StreamBox()
        let server = try HTTPServer(
            configuration: .init(host: "127.0.0.1", port: 0), handler: makeTestRouter(streams: streams).handle)
        let client = try RawHTTPClient(port: server.boundPort)
        try client.send("GET", "/api/v1/events")
        let source = try #require(streams.next())
        #expect(source.write(Array("data: x\n\n".utf8)))
        _ = try client.readResponseHead()
        _ = try client.readChunk()
        usleep(50_000)  // let the reader park the connection
        let start = Date()
        server.stop()
        #expect(Date().timeIntervalSince(start) < 2)
        #expect(source.isReleased)
    }
}

/// Polls `condition` for up to `seconds`.
func waitUntil(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}
