import Dispatch
import Glibc

/// SIGINT and SIGTERM as an async stream, so that a streaming command (`ctl capture`) ends
/// its stream and closes its output when interrupted instead of dying mid-write.
final class Interrupt: Sendable {
    /// One element per signal received.
    let signals: AsyncStream<Int32>
    /// Held only so that the sources live as long as this; never touched after `init`, so
    /// no thread shares them (Dispatch does not mark its sources Sendable).
    private nonisolated(unsafe) let sources: [any DispatchSourceSignal]

    /// Takes SIGINT and SIGTERM over from their default action until `cancel`.
    init() {
        let (signals, input) = AsyncStream.makeStream(of: Int32.self)
        self.signals = signals
        sources = [SIGINT, SIGTERM].map { number in
            // The default action would end the process before the handler runs.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { input.yield(number) }
            source.resume()
            return source
        }
    }

    /// Runs `body` until it returns or a signal comes; a signal cancels it (a request still
    /// waiting for its answer, or a stream between chunks) and returns normally.
    func cancelling(_ body: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask(operation: body)
            group.addTask { [signals] in
                for await _ in signals { return }
            }
            // The first to finish decides; an error of `body` after a signal is not reported.
            _ = try await group.next()
            group.cancelAll()
        }
    }
}
