/// The acceptor's connections not yet handed to MHD, in two queues: those
/// still sending their head, and those answered and draining before close.
///
/// Deadlines are a fixed time after entering a queue, so each queue's front
/// is both its oldest entry and its next deadline: eviction and expiry cost
/// O(1) amortized instead of a scan per accepted connection, which matters
/// when thousands of connections arrive at once. Removed entries stay in the
/// queues until they reach the front (each carries a serial to tell).
struct PendingConnections {
    /// One connection's state.
    struct Entry {
        /// Tells this entry from an earlier connection on the same descriptor.
        fileprivate let serial: UInt64
        /// When it entered its current queue.
        let since: ContinuousClock.Instant
        /// When it is closed whatever happens.
        let deadline: ContinuousClock.Instant
        /// Answered; its input is being drained before close.
        let answered: Bool
        /// The acceptor's generation tag of this connection (in its epoll data).
        var generation: UInt32 = 0
        /// Head bytes already searched for the end of the head.
        var scanned = 0
        /// The peer shut down its side; the head will not grow.
        var peerClosed = false
        /// Bytes discarded since the answer.
        var drained = 0
    }

    private var entries: [Int32: Entry] = [:]
    private var reading = FIFO()
    private var answered = FIFO()
    private var nextSerial: UInt64 = 0

    /// Connections still sending their head.
    private(set) var readingCount = 0
    /// Connections answered and draining.
    private(set) var answeredCount = 0

    /// Every descriptor held.
    var descriptors: Dictionary<Int32, Entry>.Keys { entries.keys }

    /// The entry for `fd`, if held.
    subscript(fd: Int32) -> Entry? { entries[fd] }

    /// Starts reading the head of `fd`, due by `deadline`.
    mutating func add(
        _ fd: Int32, now: ContinuousClock.Instant, deadline: ContinuousClock.Instant, generation: UInt32 = 0
    ) {
        remove(fd)
        nextSerial += 1
        var entry = Entry(serial: nextSerial, since: now, deadline: deadline, answered: false)
        entry.generation = generation
        entries[fd] = entry
        reading.push(fd, nextSerial)
        readingCount += 1
    }

    /// Moves `fd` to the answered queue, closed by `deadline` at the latest.
    mutating func markAnswered(_ fd: Int32, now: ContinuousClock.Instant, deadline: ContinuousClock.Instant) {
        guard let old = entries[fd], !old.answered else { return }
        readingCount -= 1
        nextSerial += 1
        var entry = Entry(serial: nextSerial, since: now, deadline: deadline, answered: true)
        entry.peerClosed = old.peerClosed
        entry.generation = old.generation
        entries[fd] = entry
        answered.push(fd, nextSerial)
        answeredCount += 1
    }

    /// Updates the peer-closed flag, drained count and scanned bytes of `fd`.
    mutating func update(_ fd: Int32, peerClosed: Bool? = nil, drained: Int? = nil, scanned: Int? = nil) {
        guard var entry = entries[fd] else { return }
        if let peerClosed { entry.peerClosed = peerClosed }
        if let drained { entry.drained = drained }
        if let scanned { entry.scanned = scanned }
        entries[fd] = entry
    }

    /// Forgets `fd` (handed over or closed).
    mutating func remove(_ fd: Int32) {
        guard let entry = entries.removeValue(forKey: fd) else { return }
        if entry.answered { answeredCount -= 1 } else { readingCount -= 1 }
    }

    /// The longest-waiting connection still sending its head, other than `excluded`.
    mutating func oldestReading(excluding excluded: Int32? = nil) -> Int32? {
        var queue = FIFO()
        swap(&queue, &reading)  // moved out and back, so popping does not copy it
        defer { swap(&queue, &reading) }
        return Self.front(of: &queue, in: entries, answered: false, excluding: excluded)
    }

    /// The longest-waiting answered connection, other than `excluded`.
    mutating func oldestAnswered(excluding excluded: Int32? = nil) -> Int32? {
        var queue = FIFO()
        swap(&queue, &answered)
        defer { swap(&queue, &answered) }
        return Self.front(of: &queue, in: entries, answered: true, excluding: excluded)
    }

    /// The earliest deadline of any held connection.
    mutating func nextDeadline() -> ContinuousClock.Instant? {
        let candidates = [oldestReading(), oldestAnswered()].compactMap { $0.flatMap { entries[$0]?.deadline } }
        return candidates.min()
    }

    /// The valid front of `queue`, dropping stale entries; `excluded` is
    /// skipped but kept (it is the newest, so at most one is looked past).
    private static func front(
        of queue: inout FIFO, in entries: [Int32: Entry], answered: Bool, excluding excluded: Int32?
    ) -> Int32? {
        var index = queue.head
        while index < queue.items.count {
            let (fd, serial) = queue.items[index]
            guard let entry = entries[fd], entry.serial == serial, entry.answered == answered else {
                if index == queue.head { queue.popFront() } else { index += 1 }
                continue
            }
            if fd == excluded {
                index += 1
                continue
            }
            return fd
        }
        return nil
    }

    private struct FIFO {
        var items: [(Int32, UInt64)] = []
        var head = 0

        mutating func push(_ fd: Int32, _ serial: UInt64) { items.append((fd, serial)) }

        mutating func popFront() {
            head += 1
            if head > 1024, head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
        }
    }
}
