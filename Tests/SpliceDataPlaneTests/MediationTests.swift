import Foundation
import SpliceCore
import SpliceTestSupport
import Testing

@testable import SpliceDataPlane

/// Byte-wise transforms that make a window of mediated bytes recognisable.
enum Transform {
    static let invert: @Sendable ([UInt8]) -> [UInt8] = { $0.map { ~$0 } }
    static let plusOne: @Sendable ([UInt8]) -> [UInt8] = { $0.map { $0 &+ 1 } }
    static let xor55: @Sendable ([UInt8]) -> [UInt8] = { $0.map { $0 ^ 0x55 } }
}

/// The stream the far end must see: `original` with each `[start, end)` window transformed.
func expected(_ original: [UInt8], windows: [(UInt64, UInt64)], _ transform: ([UInt8]) -> [UInt8]) -> [UInt8] {
    var out = original
    for (start, end) in windows {
        let range = Int(start)..<Int(end)
        out.replaceSubrange(range, with: transform(Array(original[range])))
    }
    return out
}

@Suite("Mediation over real sockets", .serialized, .timeLimit(.minutes(3)))
struct MediationTests {
    @Test("splice and remove repeatedly mid-stream: exactly the reported windows are transformed")
    func repeatedSpliceAndRemove() async throws {
        let recorder = try Recorder()
        defer { recorder.stop() }
        let mediator = try TestServer.transform(Transform.invert)
        defer { mediator.stop() }
        let harness = try RelayHarness(upstreamPort: recorder.port)
        defer { harness.close() }
        try harness.registerMediator("invert", port: mediator.port)

        let total = 24 << 20
        var stream = ByteStream(seed: 11)
        let original = stream.next(total)
        let client = try harness.connect()
        // A steady pace, 64 KiB every 6 ms; the last tenth waits until the cycles are done, so
        // every window falls inside the live stream however slow the machine is.
        let cyclesDone = LockedCounter()
        let sender = ThreadTask {
            var offset = 0
            while offset < total {
                if offset >= total / 10 * 9 {
                    while cyclesDone.value == 0 { usleep(1000) }
                }
                let end = min(offset + 65536, total)
                try client.send(Array(original[offset..<end]))
                offset = end
                usleep(6000)
            }
            client.shutdownWrite()
        }
        #expect(eventually { harness.gateway.sessions().sessions.first?.state == .open })
        let id = try #require(harness.gateway.sessions().sessions.first?.id)

        var windows: [(UInt64, UInt64)] = []
        for _ in 0..<6 {
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...120)))
            let hop = try harness.gateway.splice(session: id, HopRequest(target: .registered("invert"), directions: .clientToServer))
            let start = try #require(hop.legs[.clientToServer]?.splicedAt)
            try await Task.sleep(for: .milliseconds(Int.random(in: 20...120)))
            let report = try harness.gateway.removeHop(session: id, hop: hop.id)
            let end = try #require(report.removedAt[.clientToServer])
            #expect(end >= start)
            // Invert maps byte for byte: what was drained is exactly what was fed.
            windows.append((start, end))
        }
        cyclesDone.add(1)
        try await sender.value
        #expect(windows.count == 6)
        #expect(eventually(timeout: 20) { recorder.eofs == 1 })
        let got = recorder.bytes
        #expect(got.count == total)
        let want = expected(original, windows: windows, Transform.invert)
        if got != want, let first = zip(got, want).enumerated().first(where: { $1.0 != $1.1 })?.offset {
            Issue.record("first difference at offset \(first); windows \(windows)")
        }
        #expect(got == want)
        #expect(try harness.gateway.registeredMediator("invert").inUse == 0)
    }

    @Test("chain order: two non-commuting transforms, both directions, positions from the client side")
    func chainOrder() async throws {
        let recorder = try Recorder(echo: true)
        defer { recorder.stop() }
        let plusOne = try TestServer.transform(Transform.plusOne)
        defer { plusOne.stop() }
        let xor = try TestServer.transform(Transform.xor55)
        defer { xor.stop() }
        let harness = try RelayHarness(upstreamPort: recorder.port)
        defer { harness.close() }
        let gateway = harness.gateway
        try harness.registerMediator("plus1", port: plusOne.port)
        try harness.registerMediator("xor", port: xor.port)

        let (client, id) = try harness.openSession()
        // xor next to the server first, then plus1 inserted below it at position 0.
        let outer = try gateway.splice(session: id, HopRequest(target: .registered("xor"), directions: .both))
        let inner = try gateway.splice(session: id, HopRequest(target: .registered("plus1"), directions: .both, position: 0))
        let session = try gateway.session(id)
        #expect(session.hops.map(\.id) == [inner.id, outer.id])
        #expect(session.hops.map(\.position) == [0, 1])

        let payload: [UInt8] = Array(0...255)
        try client.send(payload)
        let back = try client.receive(exactly: payload.count)
        // Going in: plus1 then xor. Coming back: xor then plus1.
        #expect(recorder.bytes == Transform.xor55(Transform.plusOne(payload)))
        #expect(back == Transform.plusOne(Transform.plusOne(payload)))
        let hop = try #require(gateway.session(id).hops.first)
        #expect(hop.legs[.clientToServer]?.bytesIn == 256)
        #expect(hop.legs[.serverToClient]?.bytesOut == 256)
    }

    @Test("an unreachable mediator is a 502 and leaves the session as it was")
    func unreachableMediator() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let dead = try RefusingPort()
        defer { withExtendedLifetime(dead) {} }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        try harness.registerMediator("dead", port: dead.port)

        let (client, id) = try harness.openSession()
        let error = #expect(throws: APIError.self) {
            try harness.gateway.splice(session: id, HopRequest(target: .registered("dead"), directions: .both))
        }
        #expect(error?.status == 502)
        #expect(try harness.gateway.session(id).hops.isEmpty)
        #expect(try harness.gateway.registeredMediator("dead").inUse == 0)
        try client.send([1, 2, 3])
        #expect(try client.receive(exactly: 3) == [1, 2, 3])
    }

    @Test("reconfiguration conflicts: unknown hop 404, a removal twice 409, after EOF 409, in-use mediator 409")
    func conflicts() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        // A mediator that never finishes: it ignores EOF, so a drain lasts until its timeout.
        let release = Latch()
        let stubborn = try TestServer { socket in
            while let chunk = try? socket.receive(), !chunk.isEmpty { try? socket.send(chunk) }
            release.wait()
        }
        defer { release.open(); stubborn.stop() }
        let harness = try RelayHarness(upstreamPort: echo.port)
        defer { harness.close() }
        let gateway = harness.gateway
        try harness.registerMediator("stubborn", port: stubborn.port)

        let (client, id) = try harness.openSession()
        #expect(throws: APIError.notFound("session \(id) has no hop h999999")) {
            try gateway.removeHop(session: id, hop: HopID(number: 999_999))
        }
        let hop = try gateway.splice(session: id, HopRequest(target: .registered("stubborn"), directions: .clientToServer,
                                                              onFailure: .bypass, drainTimeoutMs: 1500))
        #expect(throws: APIError.self) { try gateway.unregisterMediator("stubborn") }
        let first = ThreadTask { () -> Int in
            do { _ = try gateway.removeHop(session: id, hop: hop.id); return 200 } catch let error as APIError { return error.status }
        }
        #expect(eventually { (try? gateway.session(id).hops.first?.state) == .draining })
        let second = #expect(throws: APIError.self) { try gateway.removeHop(session: id, hop: hop.id) }
        #expect(second?.status == 409)
        let third = #expect(throws: APIError.self) {
            try gateway.splice(session: id, HopRequest(target: .registered("stubborn"), directions: .clientToServer))
        }
        #expect(third?.status == 409)
        #expect(try await first.value == 504)
        // Bypassed: the session still relays, directly.
        try client.send([9, 8, 7])
        #expect(try client.receive(exactly: 3) == [9, 8, 7])
        #expect(try gateway.session(id).hops.isEmpty)
        try gateway.unregisterMediator("stubborn")

        client.shutdownWrite()
        #expect(try client.receive().isEmpty)
        // The client's direction has reached EOF: no more splicing into it.
        try? gateway.registerMediator(MediatorSpec(name: "again", kind: .tcp(HostPort(host: "127.0.0.1", port: echo.port))))
        if let after = try? gateway.session(id) {
            let late = #expect(throws: APIError.self) {
                try gateway.splice(session: after.id, HopRequest(target: .registered("again"), directions: .clientToServer))
            }
            #expect(late?.status == 409 || late?.status == 404)
        }
    }
}
