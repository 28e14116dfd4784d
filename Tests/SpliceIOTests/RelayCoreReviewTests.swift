import Foundation
import NIOCore
import SpliceTestSupport
import Synchronization
import Testing

@testable import SpliceIO

/// Regressions from the review of the relay core (each failed before its fix).
@Suite("Relay core: review regressions", .timeLimit(.minutes(2)))
struct RelayCoreReviewTests {
    @Test("bytes a server sends right before a reset reach the client")
    func bytesBeforeReset() throws {
        let answer = [UInt8]((0..<20_480).map { UInt8(truncatingIfNeeded: $0) })
        let server = try TestServer { socket in
            _ = try? socket.receive()
            try? socket.send(answer)
            // SO_LINGER 0: close sends an RST right behind the answer.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            _ = try? socket.using { fd in
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            }
            socket.close()
        }
        defer { server.stop() }
        let relay = try CoreRelay(upstream: server.port)
        defer { relay.stop() }
        for round in 0..<10 {
            let client = try TestSocket.connect(port: relay.port)
            defer { client.close() }
            try client.send(Array("request \(round)\n".utf8))
            var got: [UInt8] = []
            while let chunk = try? client.receive(), !chunk.isEmpty { got += chunk }
            #expect(got == answer, "round \(round): \(got.count) of \(answer.count) bytes")
        }
    }

    @Test("a client that resets while the relay holds its input back (the server reads nothing) ends the relay")
    func resetBehindHeldInput() throws {
        let release = DispatchSemaphore(value: 0)
        // Takes the connection and never reads it, so the relay stops reading its client.
        let server = try TestServer { _ in release.wait() }
        defer {
            release.signal()
            server.stop()
        }
        let relay = try CoreRelay(upstream: server.port)
        defer { relay.stop() }
        let client = try TestSocket.connect(port: relay.port)
        defer { client.close() }
        try #require(eventually { relay.relays.list.withLock { $0.count } == 1 })
        // Send until nothing more fits: the server's receive buffer, the relay's hold and the
        // client's own send buffer are full.
        let chunk = [UInt8](repeating: 0x5a, count: 65536)
        var stalledSince = Date()
        while Date().timeIntervalSince(stalledSince) < 0.5 {
            let sent = try client.using { fd in
                chunk.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            }
            if sent > 0 { stalledSince = Date() } else { usleep(10_000) }
        }
        client.reset()
        let relayed = relay.relays.list.withLock { $0[0] }
        let ended = eventually {
            (try? relayed.eventLoop.submit { !relayed.value.a.socket.isOpen && !relayed.value.b.socket.isOpen }.wait())
                ?? false
        }
        #expect(ended, "the relay still holds both connections after its client reset")
        let failures = try relayed.eventLoop.submit { relayed.value.a.failures.map(\.description) }.wait()
        #expect(failures.count == 1 && failures[0].contains("read"), "\(failures)")
    }

    @Test("a peer slower than its sender does not make the socket keep what it wrote")
    func pendingBuffersAreReleased() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        // A pipe, as to an exec mediator: its writer is woken as each page is read, so the
        // socket writes a little at a time and its queue never runs empty.
        var output: [Int32] = [0, 0], input: [Int32] = [0, 0]
        #expect(pipe(&output) == 0 && pipe(&input) == 0)
        let (theirs, writeEnd, readEnd) = (output[0], output[1], input[0])
        defer { close(theirs); close(input[1]) }
        let writer = try loop.submit { () -> NIOLoopBound<Writer> in
            let socket = RelaySocket(pipesReading: readEnd, writing: writeEnd, loop: loop)!
            let writer = Writer(socket)
            socket.delegate = writer
            writer.fill()
            return NIOLoopBound(writer, eventLoop: loop)
        }.wait()
        // Read slowly, in small pieces, well behind the writer; sample how many buffers it holds.
        var received = 0
        var most = 0
        var chunk = [UInt8](repeating: 0, count: 4096)
        var reads = 0
        while received < 8 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(theirs, $0.baseAddress, 4096) }
            guard n > 0 else { break }
            received += n
            reads += 1
            if reads % 32 == 0 {
                most = max(most, try loop.submit { writer.value.socket.pendingBufferCount }.wait())
            }
            // A reader that stays behind its writer: the socket's queue never runs empty.
            usleep(100)
        }
        try loop.submit { writer.value.socket.close() }.wait()
        #expect(received >= 8 << 20)
        // Each becameWritable adds one buffer; a queue that never empties must still let go
        // of the ones written out. Before the fix this grew with every write (hundreds).
        #expect(most <= 4, "the socket held \(most) buffers at once")
    }

    @Test("a socket with more input than one turn reads it over several loop iterations")
    func oneReadPassPerIteration() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let (ours, theirs) = (fds[0], fds[1])
        defer { close(theirs) }
        // Room for 4 MiB in flight, queued before the socket is read: 16 reads of 256 KiB,
        // four turns of four.
        for fd in fds {
            var size: Int32 = 8 << 20
            setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let total = 4 << 20
        let block = [UInt8](repeating: 0x42, count: total)
        #expect(block.withUnsafeBytes { write(theirs, $0.baseAddress, total) } == total)
        #expect(fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK) == 0)
        let collector = try loop.submit { () -> NIOLoopBound<Collector> in
            let socket = RelaySocket(tcp: ours, loop: loop)!
            let collector = Collector(socket)
            collector.watch(loop, until: total)
            socket.delegate = collector
            socket.resumeRead()
            return NIOLoopBound(collector, eventLoop: loop)
        }.wait()
        #expect(eventually { ((try? loop.submit { collector.value.bytes.count }.wait()) ?? 0) >= total })
        let (passes, iterations) = try loop.submit { collector.value.turns }.wait()
        #expect(passes >= 2)
        // Before the fix a socket that used up its turn was read again at once, up to 64
        // times, while the loop's other events, tasks and timers waited.
        #expect(passes <= iterations, "\(passes) read passes in \(iterations) loop iterations")
        try loop.submit { collector.value.socket.close() }.wait()
    }

    @Test("a loop that stops closes its epoll descriptor")
    func shutdownReleasesDescriptors() throws {
        let group = RelayLoopGroup(loopCount: 1)
        let loop = group.nextLoop()
        // A pipe registered in the loop's epoll marks it: /proc/self/fdinfo of an epoll lists
        // the inode of every descriptor it watches. (Epoll descriptors all share one inode,
        // and a closed number may be reused by another test's loop at once.)
        var marker: [Int32] = [0, 0]
        #expect(pipe(&marker) == 0)
        defer { close(marker[0]); close(marker[1]) }
        var info = stat()
        #expect(fstat(marker[0], &info) == 0)
        let tag = "ino:\(String(info.st_ino, radix: 16))"
        let epfd = try loop.submit { () -> Int32 in
            _ = loop.register(marker[0], events: 1, target: Idle())
            return loop.epfd
        }.wait()
        #expect(Self.watches(epfd, tag))
        try group.syncShutdownGracefully()
        #expect(!Self.watches(epfd, tag), "epoll descriptor \(epfd) is still open")
    }

    /// Whether epoll descriptor `fd` of this process watches the file with inode `tag`.
    private static func watches(_ fd: Int32, _ tag: String) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0.hasPrefix("tfd:") && $0.contains(tag + " ") }
    }

    @Test("an exec mediator that closes its stdin still delivers its stdout")
    func closedStdinKeepsStdout() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        var stdout: [Int32] = [0, 0], stdin: [Int32] = [0, 0]
        #expect(pipe(&stdout) == 0 && pipe(&stdin) == 0)
        let (readEnd, writeEnd) = (stdout[0], stdin[1])
        // The "process" closes its stdin: our write end gets EPOLLERR at once.
        close(stdin[0])
        let collector = try loop.submit { () -> NIOLoopBound<Collector> in
            let socket = RelaySocket(pipesReading: readEnd, writing: writeEnd, loop: loop)!
            let collector = Collector(socket)
            socket.delegate = collector
            socket.resumeRead()
            return NIOLoopBound(collector, eventLoop: loop)
        }.wait()
        let message = Array("still talking\n".utf8)
        #expect(message.withUnsafeBytes { write(stdout[1], $0.baseAddress, $0.count) } == message.count)
        close(stdout[1])
        #expect(eventually { (try? loop.submit { collector.value.ended }.wait()) ?? false })
        let (bytes, failures) = try loop.submit { (collector.value.bytes, collector.value.failures) }.wait()
        #expect(bytes == message)
        #expect(failures.isEmpty, "failed: \(failures)")
        try loop.submit { collector.value.socket.close() }.wait()
    }
}

/// A registration that ignores its events.
private final class Idle: RelayPollable {
    func ready(_ events: UInt32, slot: Int) {}
    func loopStopped() {}
}

/// Writes 64 KiB whenever the socket is writable, for ever.
private final class Writer: RelaySocketDelegate {
    let socket: RelaySocket
    private let block = [UInt8](repeating: 0x5a, count: 65_536)
    init(_ socket: RelaySocket) { self.socket = socket }
    func fill() {
        while socket.isWritable { block.withUnsafeBytes { socket.write($0) } }
    }
    var mayRead: Bool { false }
    func received(_ bytes: UnsafeRawBufferPointer) {}
    func inputClosed() {}
    func becameWritable() { fill() }
    func failed(_ error: RelayIOError) {}
    func closed() {}
}

/// Keeps what it reads and what went wrong.
private final class Collector: RelaySocketDelegate {
    let socket: RelaySocket
    var bytes: [UInt8] = []
    var failures: [RelayIOError] = []
    var ended = false
    /// Read passes and loop iterations from `watch` until `bytes` reached its target.
    var turns = (passes: 0, iterations: 0)
    private var watched: (loop: RelayLoop, target: Int, passes: Int, iterations: Int)?
    init(_ socket: RelaySocket) { self.socket = socket }
    func watch(_ loop: RelayLoop, until target: Int) {
        watched = (loop, target, loop.readPasses, loop.iterations)
    }
    var mayRead: Bool { true }
    func received(_ bytes: UnsafeRawBufferPointer) {
        self.bytes += bytes
        if let watched, self.bytes.count >= watched.target {
            turns = (watched.loop.readPasses - watched.passes, watched.loop.iterations - watched.iterations + 1)
            self.watched = nil
        }
    }
    func inputClosed() { ended = true }
    func becameWritable() {}
    func failed(_ error: RelayIOError) { failures.append(error); ended = true }
    func closed() {}
}

@available(*, unavailable)
extension Writer: Sendable {}

extension Idle: @unchecked Sendable {}

@available(*, unavailable)
extension Collector: Sendable {}
