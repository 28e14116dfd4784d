#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import SpliceControlPlane

/// The admin connection accounting: slots MHD never started come back, and
/// requests that do not arrive whole in time are cut (issue 11 review, items 1 and 3).
@Suite struct ConnectionGaugeTests {
    /// A connected socket pair, closed by the caller.
    private func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    @Test func aSlotMHDNeverStartedIsGivenBack() {
        let gauge = ConnectionGauge(startGrace: .seconds(10), requestTime: .seconds(30))
        let t0 = ContinuousClock.now
        // A descriptor number only: a slot never started is never shut down.
        gauge.reserve(100_000, now: t0)
        #expect(gauge.count == 1)
        #expect(gauge.sweep(now: t0 + .seconds(5)) == (0, 0))
        #expect(gauge.count == 1)
        #expect(gauge.sweep(now: t0 + .seconds(11)) == (1, 0))
        #expect(gauge.count == 0)
        // Started late after all: counted again until MHD closes it.
        gauge.started(100_000)
        #expect(gauge.count == 1)
        gauge.closed(100_000)
        #expect(gauge.count == 0)
    }

    @Test func aRequestStillArrivingAtItsDeadlineIsCut() throws {
        let (ours, peer) = try socketPair()
        defer { close(ours); close(peer) }
        let gauge = ConnectionGauge(startGrace: .seconds(10), requestTime: .seconds(30))
        let t0 = ContinuousClock.now
        gauge.reserve(ours, now: t0)
        gauge.started(ours, now: t0)
        #expect(gauge.sweep(now: t0 + .seconds(29)) == (0, 0))
        #expect(gauge.sweep(now: t0 + .seconds(31)) == (0, 1))
        #expect(gauge.count == 0)
        var byte: UInt8 = 0
        #expect(recv(peer, &byte, 1, 0) == 0, "the peer sees the connection end")
        gauge.closed(ours)
        #expect(gauge.slot(ours) == nil)
    }

    @Test func atTheLimitTheOldestReceivingIsCutAndCompleteOnesAreKept() throws {
        let (first, firstPeer) = try socketPair()
        let (second, secondPeer) = try socketPair()
        defer { for fd in [first, firstPeer, second, secondPeer] { close(fd) } }
        let gauge = ConnectionGauge()
        let t0 = ContinuousClock.now
        gauge.reserve(first, now: t0)
        gauge.started(first)
        gauge.requestComplete(first)
        gauge.reserve(second, now: t0 + .seconds(1))
        gauge.started(second)
        #expect(gauge.evictOldestReceiving())
        #expect(gauge.slot(second)?.cut == true)
        #expect(gauge.slot(first)?.cut == false)
        #expect(!gauge.evictOldestReceiving(), "a complete request is being answered: never cut")
        #expect(gauge.sweep(now: t0 + .seconds(3600)) == (0, 0))
        #expect(gauge.count == 1)
    }
}
