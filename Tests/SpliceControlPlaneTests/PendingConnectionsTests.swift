import Testing

@testable import SpliceControlPlane

@Suite("Pending admin connections")
struct PendingConnectionsTests {
    private let start = ContinuousClock.now

    private func at(_ seconds: Int) -> ContinuousClock.Instant { start + .seconds(seconds) }

    @Test("the oldest reading one is evicted first; answered ones queue apart")
    func order() {
        var table = PendingConnections()
        for fd in Int32(10)..<15 { table.add(fd, now: at(Int(fd)), deadline: at(Int(fd) + 10)) }
        #expect(table.readingCount == 5)
        #expect(table.oldestReading() == 10)
        #expect(table.oldestReading(excluding: 10) == 11)
        table.markAnswered(10, now: at(20), deadline: at(22))
        #expect(table.readingCount == 4 && table.answeredCount == 1)
        #expect(table.oldestReading() == 11)
        #expect(table.oldestAnswered() == 10)
        #expect(table.nextDeadline() == at(21))  // 11's head deadline comes before 10's linger
        table.remove(11)
        table.remove(12)
        #expect(table.oldestReading() == 13)
        #expect(table.nextDeadline() == at(22))
    }

    @Test("a descriptor number reused by a new connection is not taken for the old one")
    func reuse() {
        var table = PendingConnections()
        table.add(7, now: at(0), deadline: at(10))
        table.add(8, now: at(1), deadline: at(11))
        table.remove(7)
        table.add(7, now: at(2), deadline: at(12))
        #expect(table.oldestReading() == 8)
        table.remove(8)
        #expect(table.oldestReading() == 7)
        #expect(table[7]?.deadline == at(12))
        #expect(table.readingCount == 1)
        table.remove(7)
        #expect(table.oldestReading() == nil && table.nextDeadline() == nil)
    }
}
