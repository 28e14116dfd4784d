import SpliceCore

/// When to try again the listeners whose bind failed on this node (the port taken, the
/// address missing): after 1 s, then a delay that doubles with each failure up to 30 s, so
/// a port freed later is taken without a change in the cluster to prompt it.
struct BindRetries: Sendable {
    static let firstDelay: Duration = .seconds(1)
    static let longestDelay: Duration = .seconds(30)

    private var entries: [ListenerID: (delay: Duration, due: ContinuousClock.Instant)] = [:]

    /// A bind failed: tried again after the next delay.
    mutating func failed(_ id: ListenerID, at now: ContinuousClock.Instant = .now) {
        let delay = entries[id].map { min($0.delay * 2, Self.longestDelay) } ?? Self.firstDelay
        entries[id] = (delay, now + delay)
    }

    /// Bound, or no longer wanted: no more tries.
    mutating func forget(_ id: ListenerID) {
        entries[id] = nil
    }

    /// Keeps only the listeners in `wanted`.
    mutating func keep(only wanted: Set<ListenerID>) {
        entries = entries.filter { wanted.contains($0.key) }
    }

    /// Whether a try is due at `now`; each due entry then waits its delay again, unless a
    /// new failure sets a longer one first.
    mutating func due(at now: ContinuousClock.Instant = .now) -> Bool {
        var any = false
        for (id, entry) in entries where entry.due <= now {
            entries[id] = (entry.delay, now + entry.delay)
            any = true
        }
        return any
    }
}
