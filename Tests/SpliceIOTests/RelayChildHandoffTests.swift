import Foundation
import SpliceIO
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a handoff (issue 15) asks of a watched child: while suspended, an exit is not
/// reaped, so its pidfd keeps its number (the handoff passes that number on, and a reaped
/// child's pidfd would be closed and the number free for any other descriptor); resumed
/// (the handoff failed), the exit is seen and reaped.
@Suite("Relay child handoff", .timeLimit(.minutes(1)))
struct RelayChildHandoffTests {
    /// Starts `/bin/true`, a child of this process that exits at once.
    private func spawnTrue() throws -> pid_t {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { argv.forEach { free($0) } }
        let rc = posix_spawn(&pid, "/bin/true", nil, nil, argv, environ)
        guard rc == 0 else { throw SpawnError(rc: rc) }
        return pid
    }

    private struct SpawnError: Error { let rc: Int32 }

    /// The process's state letter in /proc (`Z` for a zombie), nil once it is reaped.
    private func state(of pid: pid_t) -> Character? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].first { $0 != " " }
    }

    private func waitUntil(_ what: String, _ condition: () throws -> Bool) throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try !condition() {
            guard ContinuousClock.now < deadline else { throw WaitError(what: what) }
            usleep(1000)
        }
    }

    private struct WaitError: Error { let what: String }

    @Test("suspended: an exit is not reaped and the pidfd stays open; resumed: it is reaped")
    func suspendPinsThePidfd() throws {
        let group = RelayLoopGroup(loopCount: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.nextLoop()
        let pid = try spawnTrue()
        // Watched and suspended in one loop turn: the loop never sees the pidfd readable.
        let watched = try loop.submit { () -> (RelayChild, Int32)? in
            guard let child = RelayChild(pid: pid, loop: loop), let fd = child.handoffDescriptor else { return nil }
            child.suspendForHandoff()
            return (child, fd)
        }.wait()
        let (child, pidfd) = try #require(watched)
        try waitUntil("the child to exit") { state(of: pid) == "Z" }
        // Turns of the loop in which a watched pidfd would have been reported and reaped.
        for _ in 0..<5 { try loop.submit {}.wait() }
        let pinned = try loop.submit { (child.exited, child.handoffDescriptor, fcntl(pidfd, F_GETFD)) }.wait()
        #expect(pinned.0 == false)
        #expect(pinned.1 == pidfd)
        #expect(pinned.2 >= 0)
        #expect(state(of: pid) == "Z")
        try loop.submit { child.resumeAfterHandoff() }.wait()
        try waitUntil("the child to be reaped") { try loop.submit { child.exited }.wait() }
        #expect(state(of: pid) == nil)
    }
}
