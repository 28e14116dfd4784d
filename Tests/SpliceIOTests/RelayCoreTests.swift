import Foundation
import NIOCore
@testable import SpliceIO
import SpliceTestSupport
import Synchronization
import Testing

@Suite("Relay core over real sockets", .timeLimit(.minutes(2)))
struct RelayCoreTests {
    @Test("8 MiB each way arrive exactly, and a half-close is passed on")
    func bulkBothWays() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let relay = try CoreRelay(upstream: echo.port)
        defer { relay.stop() }
        let client = try TestSocket.connect(port: relay.port)
        defer { client.close() }
        let total = 8 << 20
        let sender = ThreadTask { try sendStream(client, seed: 7, total: total, chunk: 100_003).digest }
        var received = Digest()
        while true {
            let chunk = try client.receive()
            if chunk.isEmpty { break }
            received.update(chunk)
        }
        let sentDigest = try await sender.value
        #expect(received.count == total)
        #expect(received.hex() == sentDigest)
    }

    @Test("a reader that stops reading holds the relay back instead of filling its memory")
    func backPressure() async throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let relay = try CoreRelay(upstream: echo.port)
        defer { relay.stop() }
        let client = try TestSocket.connect(port: relay.port)
        defer { client.close() }
        let total = 16 << 20
        let sender = ThreadTask { try sendStream(client, seed: 11, total: total, chunk: 65_536).count }
        // The echo's answers pile up towards a client that does not read: every buffer on
        // the way fills, and the relay must stop reading rather than queue the rest.
        try await Task.sleep(for: .milliseconds(1500))
        let pending = try relay.maxPending()
        #expect(pending <= RelaySocket.defaultWaterMarks.high + RelayLoop.scratchSize)
        var expected = ByteStream(seed: 11)
        var received = 0
        while received < total {
            let chunk = try client.receive()
            if chunk.isEmpty { break }
            #expect(chunk == expected.next(chunk.count))
            received += chunk.count
        }
        #expect(received == total)
        #expect(try await sender.value == total)
        #expect(try client.receive().isEmpty)
    }

    @Test("a dial to a port nobody listens on fails with the reason in words")
    func refused() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let refusing = try RefusingPort()
        let loop = group.nextLoop()
        let outcome = try loop.flatSubmit {
            RelayDialer.connect(host: "127.0.0.1", port: refusing.port, timeout: .seconds(5), on: loop)
                .assumeIsolated().map { socket -> String in
                    socket.close()
                    return "connected"
                }.recover { "\($0)" }.nonisolated()
        }.wait()
        #expect(outcome == "connect: connection refused")
    }

    @Test("a dial asked for from another thread connects, by address and by name", arguments: ["127.0.0.1", "localhost"])
    func dialFromAnotherThread(host: String) throws {
        let echo = try TestServer.echo()
        defer { echo.stop() }
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        // Called here, on the test's thread, not on the loop.
        let connected = RelayDialer.connect(host: host, port: echo.port, timeout: .seconds(5), on: loop)
        let open = try loop.flatSubmit {
            connected.assumeIsolated().map { socket -> Bool in
                defer { socket.close() }
                return socket.isOpen
            }.nonisolated()
        }.wait()
        #expect(open)
    }

    @Test("scheduled tasks run in deadline order and a cancelled one never runs")
    func timers() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        let order = Mutex<[Int]>([])
        let late = loop.scheduleTask(in: .milliseconds(60)) { order.withLock { $0.append(3) } }
        let early = loop.scheduleTask(in: .milliseconds(20)) { order.withLock { $0.append(1) } }
        let cancelled = loop.scheduleTask(in: .milliseconds(40)) { order.withLock { $0.append(2) } }
        cancelled.cancel()
        try early.futureResult.wait()
        try late.futureResult.wait()
        #expect(throws: EventLoopError.cancelled) { try cancelled.futureResult.wait() }
        #expect(order.withLock { $0 } == [1, 3])
        #expect(try loop.submit { loop.inEventLoop }.wait())
        #expect(!loop.inEventLoop)
    }

    @Test("a pipe pair reads, writes and passes EOF like a socket")
    func pipes() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        var toSocket: [Int32] = [0, 0], fromSocket: [Int32] = [0, 0]
        #expect(pipe(&toSocket) == 0 && pipe(&fromSocket) == 0)
        defer { close(fromSocket[0]) }
        let (socketIn, socketOut) = (toSocket[0], fromSocket[1])
        // An echo on the loop: what it reads from one pipe it writes to the other.
        let echo = try loop.submit { () -> NIOLoopBound<EchoLeg> in
            let socket = RelaySocket(pipesReading: socketIn, writing: socketOut, loop: loop)!
            let leg = EchoLeg(socket)
            socket.delegate = leg
            socket.resumeRead()
            return NIOLoopBound(leg, eventLoop: loop)
        }.wait()
        let message = Array("through the pipes\n".utf8)
        #expect(message.withUnsafeBytes { write(toSocket[1], $0.baseAddress, $0.count) } == message.count)
        var back = [UInt8](repeating: 0, count: 64)
        let n = back.withUnsafeMutableBytes { read(fromSocket[0], $0.baseAddress, 64) }
        #expect(Array(back[0..<max(n, 0)]) == message)
        close(toSocket[1])
        // EOF in, so the echo shuts its output: the reader sees EOF.
        #expect(back.withUnsafeMutableBytes { read(fromSocket[0], $0.baseAddress, 64) } == 0)
        #expect(try loop.submit { echo.value.socket.inputEnded && echo.value.socket.outputShut }.wait())
        try loop.submit { echo.value.socket.close() }.wait()
    }
}

/// Writes back what it reads; passes EOF on.
private final class EchoLeg: RelaySocketDelegate {
    let socket: RelaySocket
    init(_ socket: RelaySocket) { self.socket = socket }
    var mayRead: Bool { socket.isWritable }
    func received(_ bytes: UnsafeRawBufferPointer) { socket.write(bytes) }
    func inputClosed() { socket.closeOutputAfterFlush { _ in } }
    func becameWritable() { socket.resumeRead() }
    func failed(_ error: RelayIOError) {}
    func closed() {}
}

@Suite("Relay listener: which loop owns a client", .timeLimit(.minutes(1)))
struct RelayPlacementTests {
    /// The loops that took clients, in order, and the clients (kept open, so they count).
    final class Accepted: Sendable {
        let owners = Mutex<[ObjectIdentifier]>([])
        let sockets = Mutex<[NIOLoopBound<RelaySocket>]>([])
        var count: Int { owners.withLock { $0.count } }

        /// A listener on `group` whose clients are recorded here.
        func listen(on group: RelayLoopGroup) throws -> RelayListener {
            try RelayListener.bind(host: "127.0.0.1", port: 0, group: group) { socket, _ in
                self.owners.withLock { $0.append(ObjectIdentifier(socket.loop)) }
                self.sockets.withLock { $0.append(NIOLoopBound(socket, eventLoop: socket.loop)) }
            }
        }

        /// Closes every recorded client on its loop.
        func closeAll() throws {
            for socket in sockets.withLock({ $0 }) {
                try socket.eventLoop.submit { socket.value.close() }.wait()
            }
        }
    }

    @Test("a new client goes to the loop with less to do, whichever loop accepted it")
    func leastLoadedLoop() throws {
        let group = RelayLoopGroup(loopCount: 2)
        defer { try? group.syncShutdownGracefully() }
        let accepted = Accepted()
        let listener = try accepted.listen(on: group)
        defer { _ = try? listener.close().wait() }
        var clients: [TestSocket] = []
        defer { clients.forEach { $0.close() } }
        func connect() throws {
            clients.append(try TestSocket.connect(port: listener.localAddress.port ?? 0))
            // One at a time: each placement sees the ones before it.
            let deadline = Date().addingTimeInterval(10)
            while accepted.count < clients.count, Date() < deadline { usleep(1000) }
            try #require(accepted.count == clients.count)
        }
        for _ in 1...3 { try connect() }
        // Three clients held open: two on one loop, one on the other.
        let owners = accepted.owners.withLock { $0 }
        let busy = try #require(owners.first { owner in owners.filter { $0 == owner }.count == 2 })
        #expect(owners.filter { $0 != busy }.count == 1)
        // The busy loop's clients leave: it now has less to do than the other, so it gets
        // the next client wherever that is accepted (in turn, it would go to the other).
        for (owner, socket) in zip(owners, accepted.sockets.withLock { $0 }) where owner == busy {
            try socket.eventLoop.submit { socket.value.close() }.wait()
        }
        try connect()
        #expect(accepted.owners.withLock { $0[3] } == busy)
        try accepted.closeAll()
    }

    @Test("a burst accepted while the other loop is busy is split between the loops, not all handed over")
    func burstWhileOtherLoopBusy() throws {
        let group = RelayLoopGroup(loopCount: 2)
        defer { try? group.syncShutdownGracefully() }
        let accepted = Accepted()
        let listener = try accepted.listen(on: group)
        defer { _ = try? listener.close().wait() }
        // Loop 1 is stuck in a task: it neither accepts nor takes the clients handed to it
        // until released, so loop 0 places the whole burst seeing loop 1's sockets unchanged.
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        group.loops[1].execute {
            started.signal()
            release.wait()
        }
        started.wait()
        var clients: [TestSocket] = []
        defer { clients.forEach { $0.close() } }
        for _ in 1...10 { clients.append(try TestSocket.connect(port: listener.localAddress.port ?? 0)) }
        // Loop 0 places the whole burst: what it kept is recorded, what it handed over waits
        // in loop 1's `incoming`. (Were it slow, loop 1 would accept the rest once released
        // and place it the same way: the outcome holds either way, only the check is weaker.)
        let deadline = Date().addingTimeInterval(10)
        while accepted.count + group.loops[1].incoming.load(ordering: .relaxed) < 10, Date() < deadline { usleep(1000) }
        release.signal()
        while accepted.count < 10, Date() < deadline { usleep(1000) }
        let owners = accepted.owners.withLock { $0 }
        #expect(owners.count == 10)
        let onFirst = owners.filter { $0 == ObjectIdentifier(group.loops[0]) }.count
        // Clients on their way to a loop count for it: the burst is split about evenly.
        #expect((4...6).contains(onFirst), "loop 0 kept \(onFirst) of 10")
        try accepted.closeAll()
    }
}

@Suite("Relay loop: tasks from other threads", .timeLimit(.minutes(1)))
struct RelayLoopTaskTests {
    /// Round trips from `threads` threads: each queues a task and waits for it before the
    /// next, so a wake-up lost while the loop falls asleep strands that task with nothing
    /// queued behind it to rescue it. Returns how many waited 5 s in vain (each is then
    /// rescued by one more task, so the count goes on).
    private static func strandedTasks(_ loop: RelayLoop, threads: Int, each: Int) -> Int {
        let stranded = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            let ran = DispatchSemaphore(value: 0)
            for _ in 0..<each {
                loop.execute { ran.signal() }
                guard ran.wait(timeout: .now() + 5) == .timedOut else { continue }
                guard stranded.wrappingAdd(1, ordering: .relaxed).newValue < 3 else { return }
                loop.execute {}
                _ = ran.wait(timeout: .now() + 5)
            }
        }
        return stranded.load(ordering: .relaxed)
    }

    @Test("tasks queued one at a time from two threads, each waited for, all run")
    func everyTaskRuns() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        #expect(Self.strandedTasks(group.nextLoop(), threads: 2, each: 20_000) == 0)
    }

    @Test("tasks queued one at a time all run while a timer an hour away is pending")
    func everyTaskRunsBesideAFarTimer() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        let far = loop.scheduleTask(in: .hours(1)) {}
        defer { far.cancel() }
        #expect(Self.strandedTasks(loop, threads: 2, each: 20_000) == 0)
    }

    @Test("a task queued while the loop is busy does not write its eventfd")
    func onlyASleepingLoopIsWoken() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        let busy = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        loop.execute {
            busy.signal()
            release.wait()
        }
        busy.wait()
        let before = loop.wakeups.load(ordering: .relaxed)
        let ran = Atomic<Int>(0)
        for _ in 0..<100 { loop.execute { ran.wrappingAdd(1, ordering: .relaxed) } }
        let whileBusy = loop.wakeups.load(ordering: .relaxed) - before
        release.signal()
        #expect(eventually { ran.load(ordering: .relaxed) == 100 })
        #expect(whileBusy == 0, "\(whileBusy) eventfd writes for tasks queued while the loop ran a task")
    }

    @Test("loops asleep with nothing to do shut down when asked, every time")
    func sleepingLoopsShutDown() throws {
        for _ in 0..<100 {
            let group = RelayLoopGroup(loopCount: 2)
            let done = DispatchSemaphore(value: 0)
            group.shutdownGracefully(queue: .global()) { _ in done.signal() }
            #expect(done.wait(timeout: .now() + 5) == .success)
        }
    }
}
