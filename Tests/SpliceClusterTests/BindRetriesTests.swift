import SpliceCore
import Testing

@testable import SpliceCluster

@Suite("BindRetries")
struct BindRetriesTests {
    let id = ListenerID(number: 7)
    let start = ContinuousClock.now

    /// `due` mutates, so it is called outside `#expect`.
    private func due(_ retries: inout BindRetries, _ now: ContinuousClock.Instant) -> Bool {
        retries.due(at: now)
    }

    @Test func aFailedBindIsDueAfterOneSecondThenBacksOffToThirtySeconds() {
        var retries = BindRetries()
        retries.failed(id, at: start)
        #expect(!due(&retries, start + .milliseconds(999)))
        #expect(due(&retries, start + .seconds(1)))
        // Not due again before its delay has passed once more.
        #expect(!due(&retries, start + .milliseconds(1500)))
        var now = start + .seconds(1)
        var delays: [Duration] = []
        var delay: Duration = .seconds(1)
        for _ in 0..<7 {
            retries.failed(id, at: now)
            delay = min(delay * 2, .seconds(30))
            #expect(!due(&retries, now + delay - .milliseconds(1)))
            #expect(due(&retries, now + delay))
            delays.append(delay)
            now += delay
        }
        #expect(delays == [.seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30), .seconds(30)])
    }

    @Test func aBoundOrDeletedListenerIsNotTriedAgain() {
        var retries = BindRetries()
        retries.failed(id, at: start)
        retries.forget(id)
        #expect(!due(&retries, start + .seconds(60)))
        retries.failed(id, at: start)
        retries.keep(only: [])
        #expect(!due(&retries, start + .seconds(60)))
    }
}
