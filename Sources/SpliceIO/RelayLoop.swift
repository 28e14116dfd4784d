internal import CSpliceLinux
import Dispatch
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Something the loop polls: a socket, a pipe pair, a listener. `slot` says which of its
/// registered descriptors the event is for (a pipe pair has two).
protocol RelayPollable: AnyObject {
    func ready(_ events: UInt32, slot: Int)
}

/// One thread that owns sockets: an epoll set, a task queue woken by an eventfd, timers,
/// and one scratch buffer that every read on this loop goes through (issue 12).
///
/// Sockets are registered once, edge-triggered, for input, output and peer half-close, so
/// relaying needs no `epoll_ctl` after a socket's ADD. A read lands in the scratch buffer and
/// is handed to its session while the bytes are still there; only bytes a peer cannot take
/// are copied into a buffer of their own, which is freed once written. So a session whose
/// peers keep up holds no buffer at all, unlike a NIO channel's pooled receive buffers.
///
/// The loop is a NIO `EventLoop`, so futures, promises and scheduled tasks work on it as on
/// NIO's own loops; what it does not host is NIO channels.
public final class RelayLoop: @unchecked Sendable {
    // @unchecked: everything below except `tasks`, `shutdownState` and `thread` is touched only on
    // the loop's own thread (callers check `inEventLoop` or hop over with `execute`).

    /// Size of the per-loop read buffer: one read takes at most this much.
    ///
    /// 256 KiB: a bulk stream on loopback has that much queued at once, and one large
    /// `send` costs far less than four of 64 KiB (the kernel segments it with GSO either
    /// way); a small message reads no more than it is. One per loop, so its size costs
    /// nothing per session.
    public static let scratchSize = 256 * 1024
    /// Reads a socket may do in one turn before others get theirs.
    static let readsPerTurn = 16

    /// The thread's name (`relay-0`, …).
    public let name: String
    let epfd: Int32
    private let wakeFD: Int32
    let scratch: UnsafeMutableRawPointer
    private let thread = Atomic<UInt>(0)
    private let tasks = Mutex<[@Sendable () -> Void]>([])
    private let shutdownState = Mutex<ShutdownState>(.running)
    /// Registered descriptors: the epoll data is `generation << 32 | index`, so an event that
    /// was already fetched for a descriptor closed since then finds a newer generation.
    private var registrations: [Registration] = []
    private var freeIndices: [Int] = []
    private var generation: UInt32 = 0
    /// Sockets that may read again (back-pressure released, or a turn's reads used up).
    var readyToRead: [RelaySocket] = []
    /// Work to do after the current batch of events: callbacks that must not run inside
    /// the socket call that caused them.
    var deferred: [() -> Void] = []
    var timers = TimerHeap()
    private var stopped = false

    /// A registration holds its target strongly until deregistered: a socket stays alive
    /// while the loop can still deliver events to it.
    private struct Registration {
        var generation: UInt32 = 0
        var target: (any RelayPollable)?
        var slot = 0
    }

    typealias ShutdownCallback = (DispatchQueue, @Sendable ((any Error)?) -> Void)

    private enum ShutdownState {
        case running
        case requested([ShutdownCallback])
        case done
    }

    /// Starts the loop's thread.
    public init(name: String) {
        self.name = name
        epfd = splice_epoll_create()
        wakeFD = splice_eventfd()
        precondition(epfd >= 0 && wakeFD >= 0, "epoll/eventfd: \(String(cString: strerror(errno)))")
        scratch = UnsafeMutableRawPointer.allocate(byteCount: Self.scratchSize, alignment: 64)
        _ = splice_epoll_add(epfd, wakeFD, splice_epoll_in | splice_epoll_et, 0)
        registrations.append(Registration())  // index 0: the wake-up eventfd
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { raw in
            let loop = Unmanaged<RelayLoop>.fromOpaque(raw!).takeRetainedValue()
            loop.run()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create: \(rc)")
    }

    /// Whether the caller runs on this loop's thread.
    public var inEventLoop: Bool { UInt(pthread_self()) == thread.load(ordering: .acquiring) }

    // MARK: registration

    /// Adds `fd` to the epoll set for `events` (edge-triggered unless `events` says
    /// otherwise); returns the token to pass to `deregister`.
    func register(_ fd: Int32, events: UInt32, target: any RelayPollable, slot: Int = 0) -> PollToken? {
        let index: Int
        if let free = freeIndices.popLast() {
            index = free
        } else {
            index = registrations.count
            registrations.append(Registration())
        }
        generation &+= 1
        if generation == 0 { generation = 1 }
        registrations[index] = Registration(generation: generation, target: target, slot: slot)
        let data = UInt64(generation) << 32 | UInt64(index)
        guard splice_epoll_add(epfd, fd, events, data) == 0 else {
            registrations[index] = Registration()
            freeIndices.append(index)
            return nil
        }
        return PollToken(index: index, generation: generation)
    }

    /// Forgets a registration. Close the descriptor after (or call `epoll_ctl(DEL)` first
    /// when the descriptor stays open).
    func deregister(_ token: PollToken, fd: Int32? = nil) {
        guard token.index < registrations.count, registrations[token.index].generation == token.generation else { return }
        if let fd { _ = splice_epoll_del(epfd, fd) }
        registrations[token.index] = Registration()
        freeIndices.append(token.index)
    }

    /// Runs `body` after the current batch of events, before the loop waits again.
    func later(_ body: @escaping () -> Void) {
        deferred.append(body)
    }

    /// Reads `socket` again before the loop waits (never from inside another socket's
    /// callback: the scratch buffer may still hold the bytes being delivered).
    func scheduleRead(_ socket: RelaySocket) {
        guard !socket.readScheduled else { return }
        socket.readScheduled = true
        readyToRead.append(socket)
    }

    // MARK: tasks from any thread

    /// Queues `task` to run on the loop's thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        let wasEmpty = tasks.withLock { queue in
            queue.append(task)
            return queue.count == 1
        }
        if wasEmpty { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: the loop

    private func run() {
        thread.store(UInt(pthread_self()), ordering: .releasing)
        splice_name_thread(name)
        let capacity = 256
        let scratchEvents = splice_epoll_events(Int32(capacity))
        let flags = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        let data = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        while !stopped {
            let timeout: Int32
            if !readyToRead.isEmpty || !deferred.isEmpty || tasks.withLock({ !$0.isEmpty }) {
                timeout = 0
            } else {
                timeout = timers.timeoutMilliseconds(now: .now())
            }
            let n = splice_epoll_wait(epfd, scratchEvents, Int32(capacity), timeout, flags, data)
            if n > 0 {
                for i in 0..<Int(n) {
                    dispatch(flags[i], data[i])
                }
            }
            runReadyWork()
            runTasks()
            for task in timers.popDue(now: .now()) { task() }
            runReadyWork()
        }
        free(scratchEvents)
        flags.deallocate()
        data.deallocate()
        finishShutdown()
    }

    private func dispatch(_ events: UInt32, _ data: UInt64) {
        let index = Int(data & 0xffff_ffff)
        if index == 0 {
            var value: UInt64 = 0
            _ = Glibc.read(wakeFD, &value, 8)
            return
        }
        guard index < registrations.count else { return }
        let registration = registrations[index]
        guard registration.generation == UInt32(data >> 32), let target = registration.target else { return }
        target.ready(events, slot: registration.slot)
    }

    private func runReadyWork() {
        var rounds = 0
        while (!readyToRead.isEmpty || !deferred.isEmpty) && rounds < 64 {
            rounds += 1
            if !deferred.isEmpty {
                let work = deferred
                deferred = []
                for body in work { body() }
            }
            if !readyToRead.isEmpty {
                let sockets = readyToRead
                readyToRead = []
                for socket in sockets {
                    socket.readScheduled = false
                    socket.readAvailable()
                }
            }
        }
    }

    private func runTasks() {
        let work = tasks.withLock { queue -> [@Sendable () -> Void] in
            let work = queue
            queue = []
            return work
        }
        for task in work { task() }
    }

    // MARK: shutdown

    /// Stops the loop once the tasks queued so far have run; `callback` then runs on `queue`.
    func requestShutdown(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        let action = shutdownState.withLock { state -> (first: Bool, done: Bool) in
            switch state {
            case .running:
                state = .requested([(queue, callback)])
                return (true, false)
            case .requested(let callbacks):
                state = .requested(callbacks + [(queue, callback)])
                return (false, false)
            case .done:
                return (false, true)
            }
        }
        if action.done { return queue.async { callback(nil) } }
        if action.first { execute { self.stopped = true } }
    }

    private func finishShutdown() {
        let callbacks = shutdownState.withLock { state -> [ShutdownCallback] in
            guard case .requested(let callbacks) = state else { return [] }
            state = .done
            return callbacks
        }
        for (queue, callback) in callbacks { queue.async { callback(nil) } }
    }
}

/// A registration's handle: index and generation in the loop's table.
struct PollToken: Sendable, Equatable {
    let index: Int
    let generation: UInt32
}
