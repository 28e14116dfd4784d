import Synchronization

extension Atomic where Value == UInt64 {
    /// Raises the value to `number` unless it is there already: an id source told to issue
    /// nothing below `number` (ids restored or handed over from another process).
    func raise(to number: UInt64) {
        var current = load(ordering: .relaxed)
        while current < number {
            let (exchanged, original) = weakCompareExchange(expected: current, desired: number, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }
}
