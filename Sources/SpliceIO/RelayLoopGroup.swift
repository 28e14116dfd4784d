import Dispatch
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The relay's loops, one per core by default. An accepted client goes to the loop with the
/// least to do (`owner(forClientAcceptedOn:)`); `next()` takes them in turn (sessions adopted
/// from a predecessor process, tests).
public final class RelayLoopGroup: EventLoopGroup, Sendable {
    /// The loops, in creation order.
    public let loops: [RelayLoop]
    private let counter = Atomic<Int>(0)

    /// Starts `count` loops. Writes to a pipe whose reader has gone must fail with EPIPE,
    /// not kill the process (exec mediators are pipes; sockets use MSG_NOSIGNAL anyway).
    public init(loopCount count: Int) {
        signal(SIGPIPE, SIG_IGN)
        loops = (0..<max(1, count)).map { RelayLoop(name: "relay-\($0)") }
    }

    /// The next loop, round-robin.
    public func next() -> any EventLoop { nextLoop() }

    /// The next loop as itself.
    public func nextLoop() -> RelayLoop {
        loops[counter.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }

    /// The loop that should own a client accepted on `loop`: `loop` itself unless another
    /// loop polls fewer descriptors. Keeping a client where it was accepted spares a
    /// hand-off to another thread (a wake-up, and the session's first turn waiting for
    /// it), which is most of a short session's latency when that thread sleeps; moving it
    /// when the other loop has less to do keeps long sessions spread (four iperf3 streams
    /// accepted by one loop end up two and two, as HAProxy's least-loaded thread pick does).
    public func owner(forClientAcceptedOn loop: RelayLoop) -> RelayLoop {
        var best = loop
        var least = loop.placementLoad
        for other in loops where other !== loop {
            let load = other.placementLoad
            if load < least {
                best = other
                least = load
            }
        }
        return best
    }

    /// Clients accepted whose sessions have not yet dialled their servers (each will take
    /// a descriptor more when it does).
    var clientsInFlight: Int {
        loops.reduce(0) { $0 + $1.incoming.load(ordering: .relaxed) }
    }

    /// Some loop (the next one).
    public func any() -> any EventLoop { next() }

    /// Every loop, in order.
    public func makeIterator() -> EventLoopIterator { EventLoopIterator(loops) }

    /// How many descriptors the loops still poll (sockets, pipes, listeners, pidfds): zero
    /// once nothing is left to write. Blocks: never call it on a loop.
    public func registeredDescriptors() -> Int {
        let counts = loops.map { loop in loop.submit { loop.registeredCount } }
        return (try? EventLoopFuture.whenAllSucceed(counts, on: loops[0]).wait().reduce(0, +)) ?? 0
    }

    /// Stops every loop; `callback` runs on `queue` once all have stopped.
    public func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        let remaining = Countdown(loops.count)
        for loop in loops {
            loop.shutdownGracefully(queue: queue) { _ in
                if remaining.tick() { callback(nil) }
            }
        }
    }
}

/// Counts down from `count`; `tick()` is true for the last one.
private final class Countdown: Sendable {
    private let value: Atomic<Int>
    init(_ count: Int) { value = Atomic(count) }
    func tick() -> Bool { value.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 }
}
