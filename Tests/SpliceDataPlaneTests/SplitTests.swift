import Foundation
import NIOPosix
import SpliceCore
import SpliceIO
import SpliceTestSupport
import Testing

@testable import SpliceDataPlane

/// A gateway whose listener gives every session a failover replica of `primary` at `replica`.
func replicatedGateway(primary: Int, replica: Int) throws -> (Gateway, ListenerSnapshot, RelayLoopGroup) {
    let group = makeRelayGroup()
    let gateway = Gateway(group: group, logger: makeTestLogger())
    let listener = try gateway.addListener(ListenerSpec(
        listen: HostPort(host: "127.0.0.1", port: 0), upstream: HostPort(host: "127.0.0.1", port: primary),
        splits: [SplitRequest(address: HostPort(host: "127.0.0.1", port: replica),
                              directions: .clientToServer, onSlow: .block, failover: true)]))
    return (gateway, listener, group)
}

@Suite("Splits over real sockets", .serialized, .timeLimit(.minutes(3)))
struct SplitTests {
    @Test("a split added mid-stream receives exactly the stream from its from_offset, then EOF")
    func splitMidStream() async throws {
        let server = try Recorder()
        defer { server.stop() }
        let recipient = try Recorder()
        defer { recipient.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }

        let total = 8 << 20
        var stream = ByteStream(seed: 21)
        let original = stream.next(total)
        let client = try harness.connect()
        let halfway = LockedCounter()
        let sender = ThreadTask {
            var offset = 0
            while offset < total {
                if offset >= total / 2 { while halfway.value == 0 { usleep(1000) } }
                let end = min(offset + 65536, total)
                try client.send(Array(original[offset..<end]))
                offset = end
            }
            client.shutdownWrite()
        }
        #expect(eventually { server.count >= total / 2 })
        let id = try #require(harness.gateway.sessions().sessions.first?.id)
        let split = try harness.gateway.addSplit(session: id, SplitRequest(
            address: HostPort(host: "127.0.0.1", port: recipient.port), directions: .clientToServer))
        halfway.add(1)
        try await sender.value
        let from = try #require(split.legs[.clientToServer]?.fromOffset)
        #expect(from >= UInt64(total / 2))
        #expect(eventually { recipient.eofs == 1 })
        #expect(recipient.bytes == Array(original[Int(from)...]))
        #expect(server.bytes == original)
    }

    @Test("a recipient that never reads is dropped; 64 MiB still reach the server intact")
    func stalledRecipientDropped() async throws {
        let release = Latch()
        let server = try TestServer { socket in
            var digest = Digest()
            while let chunk = try? socket.receive(), !chunk.isEmpty { digest.update(chunk) }
            try? socket.send(Array(digest.hex().utf8))
            // Stay open so the session (and its dropped split) can still be inspected.
            release.wait()
            socket.close()
        }
        defer { release.open(); server.stop() }
        // Never reads, until the test ends.
        let stalled = try TestServer { socket in
            socket.setOption(SO_RCVBUF, 16 * 1024)
            release.wait()
        }
        defer { release.open(); stalled.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }

        let (client, id) = try harness.openSession()
        let split = try harness.gateway.addSplit(session: id, SplitRequest(
            address: HostPort(host: "127.0.0.1", port: stalled.port), directions: .clientToServer,
            onSlow: .drop, bufferBytes: 256 * 1024))
        let sent = try await sendStream(client, total: 64 << 20, seed: 9).value
        let answer = try client.receive(exactly: 64)
        #expect(String(decoding: answer, as: UTF8.self) == sent)
        let snapshot = try #require(harness.gateway.session(id).splits.first { $0.id == split.id })
        #expect(snapshot.state == .dropped)
        #expect(snapshot.reason?.hasPrefix("slow") == true)
        let leg = try #require(snapshot.legs[.clientToServer])
        #expect(leg.bytesDropped > 0)
        #expect(leg.bytesSent + leg.bytesDropped == UInt64(64 << 20))
    }

    @Test("on_slow block: a slow recipient gets a lossless copy and paces the session")
    func blockingRecipientPaces() async throws {
        let server = try Recorder()
        defer { server.stop() }
        let received = LockedCounter()
        let copy = LockedDigest()
        let slow = try TestServer { socket in
            var digest = Digest()
            while let chunk = try? socket.receive(max: 16384), !chunk.isEmpty {
                digest.update(chunk)
                received.add(chunk.count)
                usleep(1000)
            }
            copy.set(digest)
        }
        defer { slow.stop() }
        let harness = try RelayHarness(upstreamPort: server.port)
        defer { harness.close() }

        let (client, id) = try harness.openSession()
        _ = try harness.gateway.addSplit(session: id, SplitRequest(
            address: HostPort(host: "127.0.0.1", port: slow.port), directions: .clientToServer,
            onSlow: .block, bufferBytes: 64 * 1024))
        let total = 24 << 20
        let sender = sendStream(client, total: total, seed: 13)
        // While the copy crawls, the server may run ahead only by what buffers hold.
        var widestGap = 0
        while received.value < total / 2 {
            widestGap = max(widestGap, server.count - received.value)
            try await Task.sleep(for: .milliseconds(20))
        }
        let sent = try await sender.value
        #expect(eventually(timeout: 60) { copy.value != nil })
        #expect(copy.value?.count == total)
        #expect(copy.value?.hex() == sent)
        #expect(widestGap < 12 << 20, "server ran \(widestGap) bytes ahead of a blocking recipient")
    }

    @Test("failover: a line server killed with SIGKILL mid-conversation; the client sees every reply once, in order",
          arguments: [0, 80])
    func lineServerFailover(replicaDelayMs: Int) async throws {
        // The replica may answer late (replicaDelayMs): it then takes over while behind the
        // old server, and must skip what the client already has.
        let script = """
        import socket, sys, time
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
        delay = int(sys.argv[2]) / 1000
        while True:
            c, _ = s.accept(); f = c.makefile("rb"); n = 0
            for line in f:
                n += 1
                time.sleep(delay)
                c.sendall(b"reply %d to %s" % (n, line))
            c.close()
        """
        let primary = try ChildProcess("/usr/bin/env", arguments: { ["python3", "-c", script, "\($0)", "0"] })
        let replica = try ChildProcess("/usr/bin/env", arguments: {
            ["python3", "-c", script, "\($0)", "\(replicaDelayMs)"]
        })
        defer { primary.kill(); replica.kill() }
        let (gateway, listener, group) = try replicatedGateway(primary: primary.port, replica: replica.port)
        defer { gateway.shutdown(); shutdownTestGroup(group) }

        let client = try TestSocket.connect(port: listener.spec.listen.port)
        var replies: [String] = []
        for n in 1...60 {
            if n == 31 { primary.kill() }
            let line = "line \(n)\n"
            try client.send(Array(line.utf8))
            let expected = "reply \(n) to \(line)"
            replies.append(String(decoding: try client.receive(exactly: expected.utf8.count), as: UTF8.self))
        }
        #expect(replies == (1...60).map { "reply \($0) to line \($0)\n" })
        let session = try #require(gateway.sessions().sessions.first)
        #expect(session.server == "127.0.0.1:\(replica.port)")
        #expect(session.splits.isEmpty)
    }

    @Test("failover with redis-server: INCR through the gateway stays an unbroken sequence when the primary dies",
          .enabled(if: executableExists("/usr/bin/redis-server")))
    func redisFailover() async throws {
        let args = { (port: Int) in ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"] }
        let primary = try ChildProcess("/usr/bin/redis-server", arguments: args)
        let replica = try ChildProcess("/usr/bin/redis-server", arguments: args)
        defer { primary.kill(); replica.kill() }
        let (gateway, listener, group) = try replicatedGateway(primary: primary.port, replica: replica.port)
        defer { gateway.shutdown(); shutdownTestGroup(group) }

        let client = try TestSocket.connect(port: listener.spec.listen.port)
        var values: [Int] = []
        for n in 1...200 {
            if n == 101 { primary.kill() }
            try client.send(Array("INCR splicegate:counter\r\n".utf8))
            var reply: [UInt8] = []
            while !reply.suffix(2).elementsEqual([13, 10]) { reply += try client.receive(exactly: 1) }
            values.append(Int(String(decoding: reply.dropFirst().dropLast(2), as: UTF8.self)) ?? -1)
        }
        #expect(values == Array(1...200))
        #expect(try gateway.sessions().sessions.first?.server == "127.0.0.1:\(replica.port)")
    }

    @Test("failover while the server-side hop of server_to_client drains: the replica's replies wait for the direct path")
    func failoverDuringDrain() throws {
        let script = """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
        while True:
            c, _ = s.accept(); f = c.makefile("rb"); n = 0
            for line in f:
                n += 1
                c.sendall(b"reply %d to %s" % (n, line))
                open(sys.argv[2], "w").write(str(n))
            c.close()
        """
        let marks = FileManager.default.temporaryDirectory.appendingPathComponent("drain-failover-\(getpid())")
        try FileManager.default.createDirectory(at: marks, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: marks) }
        let replicaMark = marks.appendingPathComponent("replica").path
        let primary = try ChildProcess("/usr/bin/env", arguments: {
            ["python3", "-c", script, "\($0)", marks.appendingPathComponent("primary").path]
        })
        let replica = try ChildProcess("/usr/bin/env", arguments: { ["python3", "-c", script, "\($0)", replicaMark] })
        defer { primary.kill(); replica.kill() }
        // The mediator echoes, and on EOF holds its own output open until released: the
        // drain stays under way while the replica takes over.
        let release = Latch()
        defer { release.open() }
        let mediator = try TestServer { socket in
            while let chunk = try? socket.receive(), !chunk.isEmpty {
                if (try? socket.send(chunk)) == nil { break }
            }
            release.wait()
            socket.shutdownWrite()
            _ = try? socket.receiveAll()
            socket.close()
        }
        defer { mediator.stop() }
        let (gateway, listener, group) = try replicatedGateway(primary: primary.port, replica: replica.port)
        defer { gateway.shutdown(); shutdownTestGroup(group) }

        let client = try TestSocket.connect(port: listener.spec.listen.port)
        func send(_ n: Int) throws { try client.send(Array("line \(n)\n".utf8)) }
        func reply(_ n: Int) -> String? {
            let expected = "reply \(n) to line \(n)\n"
            return (try? client.receive(exactly: expected.utf8.count)).map { String(decoding: $0, as: UTF8.self) }
        }
        for n in 1...3 {
            try send(n)
            #expect(reply(n) == "reply \(n) to line \(n)\n")
        }
        let id = try #require(gateway.sessions().sessions.first?.id)
        let hop = try gateway.splice(session: id, HopRequest(
            target: .address(HostPort(host: "127.0.0.1", port: mediator.port)), directions: .serverToClient,
            drainTimeoutMs: 60_000))
        for n in 4...6 {
            try send(n)
            #expect(reply(n) == "reply \(n) to line \(n)\n")
        }
        let removal = try gateway.removingHop(session: id, hop: hop.id)
        #expect(eventually { (try? gateway.session(id).hops.first?.state) == .draining })
        // Over the API: a server that hangs up is not read while its link is paused, so its
        // EOF would only be seen after the drain.
        let split = try #require(gateway.session(id).splits.first?.id)
        #expect(try gateway.failover(session: id, split: split).server == "127.0.0.1:\(replica.port)")
        try send(7)
        // The replica has sent its reply before the drain is let end.
        #expect(eventually { (try? String(contentsOfFile: replicaMark, encoding: .utf8)) == "7" })
        release.open()
        _ = try removal.wait()
        #expect(reply(7) == "reply 7 to line 7\n")
        try send(8)
        #expect(reply(8) == "reply 8 to line 8\n")
    }
}
