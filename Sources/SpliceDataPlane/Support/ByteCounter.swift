import Synchronization

/// A byte count written on an event loop and read by the API from any thread.
final class ByteCounter: Sendable {
    private let count = Atomic<UInt64>(0)

    init() {}

    /// A counter that goes on from `start` (a session taken over from another process).
    init(_ start: UInt64) {
        count.store(start, ordering: .relaxed)
    }

    /// Adds `bytes`.
    func add(_ bytes: Int) {
        count.wrappingAdd(UInt64(bytes), ordering: .relaxed)
    }

    /// The current total.
    var value: UInt64 { count.load(ordering: .relaxed) }
}
