import SpliceCore
import Testing

@testable import SpliceDataPlane

/// A session's part in a handoff without sockets: each event in, what to do out, along both
/// sides of the exchange and the ways it can fail. (`Queued` is a plain array here; the
/// session's is its ports' queued bytes.)
@Suite("Session handoff state")
struct SessionHandoffStateTests {
    private typealias State = SessionHandoffState<[Int]>
    // Each event's answer is taken before it is checked: the expectation macros cannot
    // call a mutating method.

    @Test("served: an end happens now, a thaw or a hand-off changes nothing")
    func serving() {
        var state = State()
        #expect(!state.isHeld)
        let ended = state.end(.idle)
        #expect(ended == .end)
        let thawed = state.thaw()
        #expect(thawed == nil)
        let handedOff = state.handOff()
        #expect(handedOff == false)
        #expect(!state.isHeld)
    }

    @Test("frozen then thawed (the successor failed): ends asked meanwhile wait, the first one is carried out")
    func frozenThenThawed() throws {
        var state = State()
        let frozen = state.freeze()
        #expect(frozen)
        #expect(state.isHeld && state.isFrozen)
        let frozenAgain = state.freeze()
        #expect(frozenAgain == false, "one handoff at a time")
        let idle = state.end(.idle)
        #expect(idle == .deferred)
        let closed = state.end(.listenerClosed)
        #expect(closed == .deferred)
        let thawed = state.thaw()
        let thaw = try #require(thawed)
        #expect(thaw.deferredEnd == .idle)
        #expect(thaw.queued == nil)
        #expect(!state.isHeld)
        let killed = state.end(.killed)
        #expect(killed == .end)
    }

    @Test("frozen then handed off (acknowledged): a deferred end is dropped, the session is no longer ours")
    func frozenThenHandedOff() {
        var state = State()
        let frozen = state.freeze()
        #expect(frozen)
        let idle = state.end(.idle)
        #expect(idle == .deferred)
        let handedOff = state.handOff()
        #expect(handedOff)
        #expect(state.isHeld)
        let shutDown = state.end(.shutdown)
        #expect(shutDown == .ignore)
        let thawed = state.thaw()
        #expect(thawed == nil, "a session handed off never serves here again")
        let frozenAgain = state.freeze()
        #expect(frozenAgain == false)
        let handedOffAgain = state.handOff()
        #expect(handedOffAgain == false)
    }

    @Test("adopted then thawed (acknowledged): the queued writes come out first, then a deferred end")
    func adoptedThenThawed() throws {
        var state = State()
        state.adopt(queued: [1, 2, 3])
        #expect(state.isHeld && !state.isFrozen)
        let frozen = state.freeze()
        #expect(frozen == false)
        let idle = state.end(.idle)
        #expect(idle == .deferred)
        let thawed = state.thaw()
        let thaw = try #require(thawed)
        #expect(thaw.queued == [1, 2, 3])
        #expect(thaw.deferredEnd == .idle)
        let thawedAgain = state.thaw()
        #expect(thawedAgain == nil)
        let killed = state.end(.killed)
        #expect(killed == .end)
    }

    @Test("adopted then let go of (the successor failed before acknowledging): the predecessor keeps it")
    func adoptedThenLetGo() {
        var state = State()
        state.adopt(queued: [])
        let letGo = state.handOff()
        #expect(letGo)
        let shutDown = state.end(.shutdown)
        #expect(shutDown == .ignore)
        let thawed = state.thaw()
        #expect(thawed == nil)
    }
}
