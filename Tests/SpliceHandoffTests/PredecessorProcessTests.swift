import Foundation
@testable import SpliceHandoff
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Whether the predecessor lives, as a successor that saw the handoff connection end asks.
@Suite("Predecessor process")
struct PredecessorProcessTests {
    /// A child that runs until killed.
    private func sleeper() throws -> Process {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["30"]
        try child.run()
        return child
    }

    @Test("a predecessor that exits just after its connection closed counts as gone")
    func exitingJustAfterTheConnectionClosed() throws {
        // A killed process closes its descriptors (the successor sees EOF) a moment before
        // its exit shows on its pidfd; here the moment is stretched to 100 ms, and the answer
        // must be "gone", not "resumed". The grace is long here so that a slow scheduler
        // cannot make the kill late (the wait ends at the exit, not at the grace).
        let child = try sleeper()
        let pid = child.processIdentifier
        let killer = Thread {
            usleep(100_000)
            kill(pid, SIGKILL)
        }
        killer.start()
        #expect(!PredecessorProcess.isAlive(pid, grace: .seconds(120)))
        child.waitUntilExit()
    }

    @Test("a predecessor that lives on (it resumed) counts as alive, and one long gone as gone")
    func aliveAndGone() throws {
        let child = try sleeper()
        #expect(PredecessorProcess.isAlive(child.processIdentifier))
        // SIGKILL: a test runner may leave SIGTERM ignored, and children inherit that.
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        #expect(!PredecessorProcess.isAlive(child.processIdentifier))
        #expect(!PredecessorProcess.isAlive(0))
    }
}
