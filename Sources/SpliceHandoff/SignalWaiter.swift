internal import CSpliceLinux
import Dispatch
import Foundation
import Synchronization

/// SIGTERM and SIGINT (or the signals given), caught through dispatch sources and handed
/// out one at a time.
public final class SignalWaiter: Sendable {
    private let arrived = DispatchSemaphore(value: 0)
    private let received = SignalQueue()
    // Kept so the sources stay installed for the process's life.
    private let sources: [DispatchSourceSignalBox]

    /// Returns once every source is registered: a source registers on dispatch's own thread
    /// some time after `resume`. Until then a signal is latched by a handler of ours (so that
    /// the default action does not kill the process, and the signal is not lost either) and
    /// handed out once the sources are in place. Start-up reports ready only after this, so
    /// a supervisor's SIGTERM at any moment from here on is never missed.
    /// `beforeRegistration` runs between the latch and the sources (a test raises a signal there).
    /// The default signals are SIGTERM (15) and SIGINT (2), the same on every Linux.
    public init(_ numbers: [Int32] = [15, 2], beforeRegistration: () -> Void = {}) {
        var sources: [DispatchSourceSignalBox] = []
        let arrived = arrived
        let received = received
        let registered = DispatchSemaphore(value: 0)
        for number in numbers {
            _ = splice_signal_latch_install(number)
        }
        beforeRegistration()
        for number in numbers {
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                received.push(number)
                arrived.signal()
            }
            source.setRegistrationHandler { registered.signal() }
            source.resume()
            sources.append(DispatchSourceSignalBox(source))
        }
        for _ in numbers {
            // Bounded, so a dispatch that never reports cannot hang start-up.
            _ = registered.wait(timeout: .now() + .seconds(5))
        }
        self.sources = sources
        // Registered: dispatch's handler has replaced the latch's. What the latch caught
        // before is handed out now, as if it had come through the sources.
        for number in numbers where splice_signal_latch_take(number) != 0 {
            received.push(number)
            arrived.signal()
        }
    }

    /// What `next()` returns once a successor has taken everything over (no real signal).
    public static let handedOff: Int32 = -1

    /// Wakes `next()` as a signal would (`handedOff`).
    public func post(_ number: Int32) {
        received.push(number)
        arrived.signal()
    }

    /// Blocks until a signal arrives; returns which.
    public func next() -> Int32 {
        arrived.wait()
        return received.pop()
    }

    /// The next signal if one arrives within `timeout`, else nil.
    public func next(waitingUpTo timeout: Duration) -> Int32? {
        let nanoseconds = Int(timeout.components.seconds) * 1_000_000_000
            + Int(timeout.components.attoseconds / 1_000_000_000)
        guard arrived.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
        return received.pop()
    }
}

/// Signal numbers in arrival order.
private final class SignalQueue: Sendable {
    private let numbers = Mutex<[Int32]>([])

    func push(_ number: Int32) {
        numbers.withLock { $0.append(number) }
    }

    func pop() -> Int32 {
        numbers.withLock { $0.isEmpty ? 0 : $0.removeFirst() }
    }
}

/// A dispatch signal source, kept alive by the waiter.
private struct DispatchSourceSignalBox: @unchecked Sendable {
    // @unchecked: only stored, never touched after it is resumed.
    let source: any DispatchSourceSignal
    init(_ source: any DispatchSourceSignal) { self.source = source }
}
