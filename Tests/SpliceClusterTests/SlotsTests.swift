import Synchronization
import Testing

@testable import SpliceCluster

@Suite("Slots")
struct SlotsTests {
    private var far: ContinuousClock.Instant { .now + .seconds(60) }

    /// Who was served, in order; shared with the waiting tasks.
    private final class Served: Sendable {
        private let order = Mutex<[Int]>([])
        var list: [Int] { order.withLock { $0 } }
        func add(_ index: Int) { order.withLock { $0.append(index) } }
    }

    @Test func atMostCountHoldSlotsAndWaitersAreServedInTheOrderTheyCame() async throws {
        let slots = Slots(2)
        #expect(await slots.acquire(until: far))
        #expect(await slots.acquire(until: far))
        #expect(slots.free == 0)
        let served = Served()
        var waiters: [Task<Void, Never>] = []
        for index in 0..<3 {
            waiters.append(Task { [far] in
                if await slots.acquire(until: far) { served.add(index) }
            })
            // The next one comes only once this one waits: the order is the order of arrival.
            while slots.waiting < index + 1 { await Task.yield() }
        }
        #expect(served.list.isEmpty)
        slots.release()
        slots.release()
        slots.release()
        for waiter in waiters { await waiter.value }
        #expect(served.list == [0, 1, 2])
        #expect(slots.free == 0)
        for _ in 0..<2 { slots.release() }
        #expect(slots.free == 2)
    }

    @Test func aWaiterWhoseDeadlinePassesGetsNoSlotAndTakesNoneLater() async {
        let slots = Slots(1)
        #expect(await slots.acquire(until: far))
        #expect(!(await slots.acquire(until: .now + .milliseconds(20))))
        #expect(slots.waiting == 0)
        slots.release()
        #expect(slots.free == 1)
    }

    @Test func aCancelledWaiterGetsNoSlotAndTakesNoneLater() async {
        let slots = Slots(1)
        #expect(await slots.acquire(until: far))
        let waiter = Task { [far] in await slots.acquire(until: far) }
        while slots.waiting == 0 { await Task.yield() }
        waiter.cancel()
        #expect(!(await waiter.value))
        #expect(slots.waiting == 0)
        slots.release()
        #expect(slots.free == 1)
    }

    @Test func aWaiterCancelledBeforeItWaitsGetsNoSlot() async {
        let slots = Slots(1)
        #expect(await slots.acquire(until: far))
        let waiter = Task { [far] in
            withUnsafeCurrentTask { $0?.cancel() }
            return await slots.acquire(until: far)
        }
        #expect(!(await waiter.value))
        slots.release()
        #expect(slots.free == 1)
    }
}
