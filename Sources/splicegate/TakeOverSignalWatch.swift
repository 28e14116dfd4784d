import Dispatch
import Foundation
import Logging
import SpliceHandoff
import Synchronization

/// SIGTERM or SIGINT while this process takes over from a running gateway (`--take-over`).
/// Until the successor acknowledges, a signal abandons the take-over: the running gateway
/// keeps everything, as if this process had never started. Once it has acknowledged the
/// sessions are this process's: the take-over completes and the signal then drains them
/// as usual (`stop` hands it back to the main wait).
final class TakeOverSignalWatch: Sendable {
    private let signals: SignalWaiter
    private let seen = Mutex<Int32?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let ended = DispatchSemaphore(value: 0)

    /// Watches `signals` on a thread of its own until `stop`.
    init(signals: SignalWaiter, logger: Logger) {
        self.signals = signals
        let thread = Thread { [self] in
            defer { ended.signal() }
            while !stopping.load(ordering: .relaxed) {
                guard let number = signals.next(waitingUpTo: .milliseconds(20)) else { continue }
                seen.withLock { $0 = number }
                // A successor of this process may have taken over already (not a signal).
                guard number != SignalWaiter.handedOff else { return }
                logger.notice("signal while taking over: abandoned unless acknowledged already (then it completes, and drains)",
                              metadata: ["signal": "\(number)"])
                return
            }
        }
        thread.name = "take-over signals"
        thread.start()
    }

    /// The signal that arrived, if one did.
    var signal: Int32? { seen.withLock { $0 }.flatMap { $0 == SignalWaiter.handedOff ? nil : $0 } }

    /// Stops watching (once; later calls do nothing); a signal that arrived is handed back to
    /// the main wait.
    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        ended.wait()
        if let number = seen.withLock({ $0 }) { signals.post(number) }
    }
}
