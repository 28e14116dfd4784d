import Dispatch
import NIOCore

/// The loop as a NIO `EventLoop`: promises, futures and scheduled tasks behave as on NIO's
/// own loops, so the session logic above the sockets keeps its futures.
extension RelayLoop: EventLoop {
    /// Runs `task` on the loop at `deadline`; cancelling removes it from the timer heap.
    public func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise = makePromise(of: T.self)
        let holder = TimerHolder()
        let schedule: @Sendable () -> Void = {
            holder.entry = self.timers.add(deadline) {
                do { promise.assumeIsolated().succeed(try task()) } catch { promise.fail(error) }
            }
        }
        if inEventLoop { schedule() } else { execute(schedule) }
        return Scheduled(promise: promise) {
            let cancel: @Sendable () -> Void = {
                if let entry = holder.entry, self.timers.cancel(entry) { promise.fail(EventLoopError.cancelled) }
            }
            if self.inEventLoop { cancel() } else { self.execute(cancel) }
        }
    }

    /// Runs `task` on the loop after `delay`.
    public func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    /// Stops the loop after the tasks queued so far; `callback` runs on `queue`.
    public func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        requestShutdown(queue: queue, callback)
    }

    /// The loop itself (a loop is a group of one).
    public func next() -> any EventLoop { self }

    /// The loop itself.
    public func any() -> any EventLoop { self }

    /// An iterator over this one loop.
    public func makeIterator() -> EventLoopIterator { EventLoopIterator([self]) }
}

/// Where a scheduled task's timer entry lands once it is added on the loop.
private final class TimerHolder: @unchecked Sendable {
    // @unchecked: written and read only on the loop's thread.
    var entry: TimerEntry?
}
