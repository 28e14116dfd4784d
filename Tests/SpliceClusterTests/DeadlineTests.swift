import Synchronization
import Testing

@testable import SpliceCluster

@Suite("withDeadline")
struct DeadlineTests {
    /// A flag closures can share.
    private final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }

    /// A body that ignores cancellation and ends only when told to: as a postgres-nio query
    /// written to a connection that has just closed, which is never answered.
    private final class Stuck: Sendable {
        private let released = Mutex<CheckedContinuation<Void, Never>?>(nil)
        private let ended = Atomic<Bool>(false)
        private let began = Atomic<Bool>(false)

        var hasBegun: Bool { began.load(ordering: .relaxed) }
        var hasEnded: Bool { ended.load(ordering: .relaxed) }

        func run() async -> Int {
            await withCheckedContinuation { continuation in
                released.withLock { $0 = continuation }
                began.store(true, ordering: .relaxed)
            }
            ended.store(true, ordering: .relaxed)
            return 1
        }

        func release() {
            released.withLock { $0 }?.resume()
        }
    }

    @Test func theCallerGetsDeadlineExceededWhileTheBodyIsStillStuck() async throws {
        let stuck = Stuck()
        let abandoned = Flag()
        let caller = Task {
            try await withDeadline(.milliseconds(50), abandon: { abandoned.set() }) { await stuck.run() }
        }
        let answered = Flag()
        Task {
            _ = try? await caller.value
            answered.set()
        }
        // The caller must be answered while the body is stuck; a task group would wait for
        // the body for ever. Not a measure of speed: 10 s is only how long the test waits
        // before it says so (then it frees the body, and fails).
        let giveUp = ContinuousClock.now + .seconds(10)
        while !answered.isSet && ContinuousClock.now < giveUp { try await Task.sleep(for: .milliseconds(5)) }
        let answeredWhileStuck = answered.isSet && !stuck.hasEnded
        while !stuck.hasBegun { await Task.yield() }
        stuck.release()
        #expect(answeredWhileStuck)
        await #expect(throws: DeadlineExceeded.self) { try await caller.value }
        #expect(abandoned.isSet)
    }

    @Test func aBodyThatEndsInTimeGivesItsValueAndAbandonsNothing() async throws {
        let abandoned = Flag()
        let value = try await withDeadline(.seconds(30), abandon: { abandoned.set() }) {
            try await Task.sleep(for: .milliseconds(1))
            return 7
        }
        #expect(value == 7)
        #expect(!abandoned.isSet)
    }

    @Test func aBodysErrorIsThrownAsItIs() async {
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await withDeadline(.seconds(30), abandon: {}) { () async throws -> Int in throw Refused() }
        }
    }

    @Test func cancellingTheCallerEndsTheWaitAndCancelsTheBody() async {
        let bodyCancelled = Flag()
        let caller = Task {
            try await withDeadline(.seconds(30), abandon: {}) { () async throws -> Int in
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    bodyCancelled.set()
                    throw error
                }
                return 1
            }
        }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
        while !bodyCancelled.isSet { await Task.yield() }
    }
}
