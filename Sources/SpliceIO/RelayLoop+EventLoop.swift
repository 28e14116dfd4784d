import Dispatch
import NIOCore

/// The loop as a NIO `EventLoop`: promises, futures and scheduled tasks behave as on NIO's
/// own loops, so the session logic above the sockets keeps its futures.
extension RelayLoop: EventLoop {
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

    public func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    public func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        requestShutdown(queue: queue, callback)
    }

    public func next() -> any EventLoop { self }

    public func any() -> any EventLoop { self }

    public func makeIterator() -> EventLoopIterator { EventLoopIterator([self]) }
}

/// Where a scheduled task's timer entry lands once it is added on the loop.
private final class TimerHolder: @unchecked Sendable {
    // @unchecked: written and read only on the loop's thread.
    var entry: TimerEntry?
}
