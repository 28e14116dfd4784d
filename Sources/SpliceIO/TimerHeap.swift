import NIOCore

/// One scheduled task; its place in the heap is kept so a cancel removes it at once (a
/// cancelled connect timeout must not hold memory until its deadline).
final class TimerEntry {
    let deadline: NIODeadline
    let sequence: UInt64
    /// Dropped as the entry leaves the heap: whoever still holds the entry (a `Scheduled`
    /// kept by a hop) must not keep what the task captured alive through it.
    fileprivate(set) var task: (() -> Void)?
    /// Index in the heap, or -1 once fired or cancelled.
    fileprivate(set) var index = -1

    init(deadline: NIODeadline, sequence: UInt64, task: @escaping () -> Void) {
        self.deadline = deadline
        self.sequence = sequence
        self.task = task
    }
}

/// The loop's scheduled tasks, earliest first (a binary heap). Loop-confined.
struct TimerHeap {
    private var heap: [TimerEntry] = []
    private var sequence: UInt64 = 0

    /// Adds a task; keep the entry to `cancel` it.
    mutating func add(_ deadline: NIODeadline, _ task: @escaping () -> Void) -> TimerEntry {
        sequence &+= 1
        let entry = TimerEntry(deadline: deadline, sequence: sequence, task: task)
        entry.index = heap.count
        heap.append(entry)
        siftUp(entry.index)
        return entry
    }

    /// Removes a task that has not run yet; false if it already ran or was cancelled.
    @discardableResult
    mutating func cancel(_ entry: TimerEntry) -> Bool {
        let i = entry.index
        guard i >= 0, i < heap.count, heap[i] === entry else { return false }
        remove(at: i)
        return true
    }

    var isEmpty: Bool { heap.isEmpty }

    /// Milliseconds until the earliest deadline (rounded up), 0 if one is due, -1 if none.
    func timeoutMilliseconds(now: NIODeadline) -> Int32 {
        guard let first = heap.first else { return -1 }
        let nanos = first.deadline.uptimeNanoseconds > now.uptimeNanoseconds
            ? first.deadline.uptimeNanoseconds - now.uptimeNanoseconds : 0
        return Int32(min((nanos + 999_999) / 1_000_000, UInt64(Int32.max)))
    }

    /// Takes out every task whose deadline has passed, earliest first.
    mutating func popDue(now: NIODeadline) -> [() -> Void] {
        var due: [() -> Void] = []
        while let first = heap.first, first.deadline <= now {
            if let task = remove(at: 0) { due.append(task) }
        }
        return due
    }

    @discardableResult
    private mutating func remove(at i: Int) -> (() -> Void)? {
        let removed = heap[i]
        let task = removed.task
        removed.task = nil
        let last = heap.removeLast()
        removed.index = -1
        guard i < heap.count else { return task }
        heap[i] = last
        last.index = i
        siftDown(i)
        siftUp(last.index)
        return task
    }

    private func less(_ a: TimerEntry, _ b: TimerEntry) -> Bool {
        a.deadline < b.deadline || (a.deadline == b.deadline && a.sequence < b.sequence)
    }

    private mutating func swapAt(_ i: Int, _ j: Int) {
        heap.swapAt(i, j)
        heap[i].index = i
        heap[j].index = j
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(heap[i], heap[parent]) else { return }
            swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < heap.count, less(heap[l], heap[smallest]) { smallest = l }
            if r < heap.count, less(heap[r], heap[smallest]) { smallest = r }
            guard smallest != i else { return }
            swapAt(i, smallest)
            i = smallest
        }
    }
}
