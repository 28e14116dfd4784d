import Foundation
import SpliceHandoff
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A signal that arrives while the waiter's dispatch sources are still being registered.
@Suite("Signal waiter")
struct SignalWaiterTests {
    @Test("a signal raised before the sources are registered is handed out, not lost")
    func signalBeforeRegistration() {
        // SIGUSR2 stands in for SIGTERM: if the fix failed, its default action would end the
        // test process (and fail the run) rather than pass quietly.
        // Sent to the process, as a supervisor's is (`raise` would target this thread, a
        // dispatch worker that blocks every signal).
        let waiter = SignalWaiter([SIGUSR2]) { kill(getpid(), SIGUSR2) }
        #expect(waiter.next(waitingUpTo: .seconds(10)) == SIGUSR2)
        // Once registered, the sources deliver as before.
        kill(getpid(), SIGUSR2)
        #expect(waiter.next(waitingUpTo: .seconds(10)) == SIGUSR2)
        #expect(waiter.next(waitingUpTo: .milliseconds(100)) == nil)
    }
}
