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
    /// The loop stopped with this still registered: let go of descriptors, quietly.
    func loopStopped()
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
    /// Reads a socket may do in one turn before others get theirs: 1 MiB at most, so a
    /// bulk stream cannot hold up the loop's other sessions for long.
    static let readsPerTurn = 4

    /// The thread's name (`relay-0`, …).
    public let name: String
    let epfd: Int32
    private let wakeFD: Int32
    /// The wake-up eventfd's number, for tests.
    var wakeFDForTests: Int32 { wakeFD }
    let scratch: UnsafeMutableRawPointer
    private let thread = Atomic<UInt>(0)
    private let tasks = Mutex<TaskQueue>(TaskQueue())
    private let shutdownState = Mutex<ShutdownState>(.running)
    /// Registered descriptors: the epoll data is `generation << 32 | index`, so an event that
    /// was already fetched for a descriptor closed since then finds a newer generation.
    private var registrations: [Registration] = []
    /// Descriptors registered, as other loops read it to place a new client (see
    /// `RelayLoopGroup.owner(forClientAcceptedOn:)`); written only on the loop.
    let load = Atomic<Int>(0)
    /// Clients handed to this loop and not yet registered by it: counted with `load`, or a
    /// burst of clients accepted by another loop would all come here before it ran once.
    let incoming = Atomic<Int>(0)

    /// What a new client's placement compares: descriptors polled and clients on their way.
    var placementLoad: Int { load.load(ordering: .relaxed) + incoming.load(ordering: .relaxed) }
    private var freeIndices: [Int] = []
    private var generation: UInt32 = 0
    /// Sockets that may read again (back-pressure released, or a turn's reads used up).
    var readyToRead: [RelaySocket] = []
    /// Work to do after the current batch of events: callbacks that must not run inside
    /// the socket call that caused them.
    var deferred: [() -> Void] = []
    // The lists being worked through, swapped with the ones above so that both keep their
    // storage: emptied with `= []`, every first append after a turn allocated anew.
    private var deferredRunning: [() -> Void] = []
    private var readingNow: [RelaySocket] = []
    private var tasksRunning: [@Sendable () -> Void] = []
    var timers = TimerHeap()
    private var stopped = false
    /// Writes to the wake-up eventfd, for tests.
    let wakeups = Atomic<Int>(0)
    /// Loop iterations and passes over `readyToRead`, for tests: at most one pass each.
    private(set) var iterations = 0
    private(set) var readPasses = 0

    /// Tasks from other threads; closed once the loop has stopped (its eventfd is gone).
    private struct TaskQueue {
        var tasks: [@Sendable () -> Void] = []
        var closed = false
        /// The loop is in (or about to enter) a blocking wait with nothing queued: the next
        /// task must write the eventfd. Set and cleared under the lock by the loop, cleared by
        /// the task that wakes it, so a task queued while the loop runs costs no syscall on
        /// either side (the loop looks at the queue before it waits).
        var sleeping = false
    }

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
        load.wrappingAdd(1, ordering: .relaxed)
        return PollToken(index: index, generation: generation)
    }

    /// Forgets a registration. Close the descriptor after (or call `epoll_ctl(DEL)` first
    /// when the descriptor stays open).
    func deregister(_ token: PollToken, fd: Int32? = nil) {
        guard token.index < registrations.count, registrations[token.index].generation == token.generation else { return }
        if let fd { _ = splice_epoll_del(epfd, fd) }
        registrations[token.index] = Registration()
        freeIndices.append(token.index)
        load.wrappingSubtract(1, ordering: .relaxed)
    }

    /// How many descriptors are registered, the loop's own wake-up aside (on the loop).
    var registeredCount: Int { registrations.count - 1 - freeIndices.count }

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
    /// After shutdown the task is dropped: the loop's eventfd is closed, and its number may
    /// belong to someone else by then.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        tasks.withLock { queue in
            guard !queue.closed else { return }
            queue.tasks.append(task)
            // Woken under the lock: shutdown closes the eventfd only after closing the queue.
            // Only a sleeping loop is woken: a running one (its own thread included) looks at
            // the queue before it waits.
            if queue.sleeping {
                queue.sleeping = false
                wake()
            }
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
        wakeups.wrappingAdd(1, ordering: .relaxed)
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
            iterations += 1
            // Blocks only with nothing to do and no timer due, marked sleeping in the same
            // look at the queue that finds it empty.
            var timeout: Int32 = 0
            if readyToRead.isEmpty && deferred.isEmpty {
                let wait = timers.timeoutMilliseconds(now: .now())
                if wait != 0 && tasks.withLock({ queue in
                    guard queue.tasks.isEmpty else { return false }
                    queue.sleeping = true
                    return true
                }) {
                    timeout = wait
                }
            }
            let n = splice_epoll_wait(epfd, scratchEvents, Int32(capacity), timeout, flags, data)
            if timeout != 0 { tasks.withLock { $0.sleeping = false } }
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
        releaseResources()
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

    /// Deferred callbacks until none are left (bounded), and one pass over the sockets
    /// waiting to read: a socket that used up its turn is read again only after the loop
    /// has polled, so a bulk stream cannot starve the loop's other sockets, tasks and timers.
    private func runReadyWork() {
        runDeferred()
        guard !readyToRead.isEmpty else { return }
        readPasses += 1
        swap(&readyToRead, &readingNow)
        for socket in readingNow {
            socket.readScheduled = false
            socket.readAvailable()
            runDeferred()
        }
        readingNow.removeAll(keepingCapacity: true)
    }

    private func runDeferred() {
        var rounds = 0
        while !deferred.isEmpty && rounds < 64 {
            rounds += 1
            swap(&deferred, &deferredRunning)
            for body in deferredRunning { body() }
            deferredRunning.removeAll(keepingCapacity: true)
        }
    }

    private func runTasks() {
        tasks.withLock { queue in
            guard !queue.tasks.isEmpty else { return }
            swap(&queue.tasks, &tasksRunning)
        }
        for task in tasksRunning { task() }
        tasksRunning.removeAll(keepingCapacity: true)
    }

    /// The loop has stopped: no more tasks, every registered socket closed, pending timers
    /// dropped, and the loop's own descriptors and buffer given back.
    private func releaseResources() {
        tasks.withLock { queue in
            queue.closed = true
            queue.tasks = []
        }
        let targets = registrations.compactMap(\.target)
        registrations = []
        freeIndices = []
        for target in targets { target.loopStopped() }
        readyToRead = []
        readingNow = []
        deferred = []
        deferredRunning = []
        tasksRunning = []
        timers = TimerHeap()
        Glibc.close(epfd)
        Glibc.close(wakeFD)
        scratch.deallocate()
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
