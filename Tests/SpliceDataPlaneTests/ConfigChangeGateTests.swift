import Dispatch
import Foundation
import SpliceCore
import SpliceTestSupport
import Synchronization
import Testing

@testable import SpliceDataPlane

/// Runs the blocking `body` on a thread of its own (a freeze must not hold the task pool).
private func onThread<T: Sendable>(_ body: @escaping @Sendable () throws(HandoffRefused) -> T) async -> Result<T, HandoffRefused> {
    await withCheckedContinuation { continuation in
        Thread {
            do throws(HandoffRefused) {
                continuation.resume(returning: .success(try body()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }.start()
    }
}

/// A flag shared with tasks and threads (an `Atomic` cannot be captured by an escaping closure).
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// Waits (at most 10 s) until `condition` holds.
private func eventually(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        try #require(ContinuousClock.now < deadline, "condition not met within 10 s")
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// A gateway with no listeners, and changes that stay under way until released.
private final class GateHarness: Sendable {
    let group = makeRelayGroup()
    let gateway: Gateway

    init() {
        gateway = Gateway(group: group, logger: makeTestLogger())
    }

    /// A change that has begun (it is inside the gate) when this returns, and runs until
    /// `release` is set; `ended` is set as it ends.
    func heldChange(release: Flag, ended: Flag) async throws -> Task<Void, any Error> {
        let entered = Flag()
        let change = Task { [gateway] in
            try await gateway.changingConfiguration { () async throws(APIError) in
                entered.set()
                while !release.isSet { try? await Task.sleep(for: .milliseconds(5)) }
                ended.set()
            }
        }
        try await eventually { entered.isSet }
        return change
    }

    func close() {
        gateway.shutdown()
        shutdownTestGroup(group)
    }
}

/// Listener and mediator changes against a handoff (`ConfigChangeGate`): none runs while
/// the gateway is frozen, one under way is finished before the freeze reads anything.
@Suite("Configuration changes and the handoff", .serialized, .timeLimit(.minutes(1)))
struct ConfigChangeGateTests {
    @Test("a change asked for during a handoff is a 409 and changes nothing; after a failed one it runs")
    func refusedWhileFrozen() async throws {
        let harness = GateHarness()
        defer { harness.close() }
        let gateway = harness.gateway
        // Nothing to hand over: the export holds no descriptor.
        _ = try await onThread { () throws(HandoffRefused) in try gateway.freezeForHandoff() }.get()
        let ran = Flag()
        await #expect(throws: APIError.self) {
            try await gateway.changingConfiguration { () async throws(APIError) in ran.set() }
        }
        #expect(!ran.isSet)
        #expect(await gateway.unlessHandingOff { 1 } == nil)
        gateway.resumeAfterHandoff()
        try await gateway.changingConfiguration { () async throws(APIError) in ran.set() }
        #expect(ran.isSet)
        #expect(await gateway.unlessHandingOff { 1 } == 1)
    }

    @Test("a change under way when a handoff begins ends before the freeze goes on")
    func freezeWaitsForAChange() async throws {
        let harness = GateHarness()
        defer { harness.close() }
        let gateway = harness.gateway
        let release = Flag()
        let ended = Flag()
        let change = try await harness.heldChange(release: release, ended: ended)
        let freeze = Task {
            await onThread { () throws(HandoffRefused) -> Bool in
                _ = try gateway.freezeForHandoff()
                // What the freeze reads, it reads after the change has ended.
                return ended.isSet
            }
        }
        try await eventually { gateway.handoffUnderway }
        release.set()
        try await change.value
        #expect(try await freeze.value.get())
        gateway.resumeAfterHandoff()
    }

    @Test("a change that does not end in time refuses the handoff, and changes are taken again")
    func slowChangeRefuses() async throws {
        let harness = GateHarness()
        defer { harness.close() }
        let gateway = harness.gateway
        let release = Flag()
        let change = try await harness.heldChange(release: release, ended: Flag())
        let outcome = await onThread { () throws(HandoffRefused) in try gateway.freezeForHandoff() }
        release.set()
        try await change.value
        guard case .failure(let refused) = outcome else {
            Issue.record("the handoff went on with a change under way")
            return
        }
        #expect(refused.reason.contains("a listener or mediator change is under way"))
        #expect(!gateway.handoffUnderway)
        #expect(await gateway.unlessHandingOff { 1 } == 1)
    }
}
