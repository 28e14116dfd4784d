import Foundation

/// A gate a fixture thread waits at until the test opens it: a server that must hold its
/// connection "for as long as the test needs" waits here instead of sleeping a guessed time.
public final class Latch: @unchecked Sendable {
    // @unchecked: `isOpen` is only touched under `condition`.
    private let condition = NSCondition()
    private var isOpen = false

    public init() {}

    /// Lets every waiter, present and future, go on.
    public func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until `open()` or `timeout` seconds; true when opened.
    @discardableResult
    public func wait(timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !isOpen {
            if !condition.wait(until: deadline) { return isOpen }
        }
        return true
    }
}
