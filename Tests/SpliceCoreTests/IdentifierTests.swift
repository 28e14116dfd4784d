import SpliceCore
import Testing

@Suite("Identifiers")
struct IdentifierTests {
    @Test("round-trip their text form, each kind with its own letter")
    func roundTrip() {
        for number: UInt64 in [1, 9, 10, 17, 1_000_003, UInt64.max] {
            let session = SessionID(number: number), hop = HopID(number: number)
            let split = SplitID(number: number), listener = ListenerID(number: number)
            #expect(session.description == "s\(number)")
            #expect(hop.description == "h\(number)")
            #expect(split.description == "x\(number)")
            #expect(listener.description == "l\(number)")
            #expect(SessionID(session.description) == session)
            #expect(HopID(hop.description) == hop)
            #expect(SplitID(split.description) == split)
            #expect(ListenerID(listener.description) == listener)
        }
    }

    @Test("refuse another kind's text, as a path naming the wrong kind is no resource")
    func wrongPrefix() {
        #expect(SessionID("h1") == nil)
        #expect(SessionID("x1") == nil)
        #expect(SessionID("l1") == nil)
        #expect(SessionID("S1") == nil)
        #expect(HopID("s1") == nil)
        #expect(SplitID("s1") == nil)
        #expect(SplitID("h1") == nil)
        #expect(ListenerID("s1") == nil)
        #expect(ListenerID("x1") == nil)
    }

    @Test("parse positive decimal numbers only, in one spelling")
    func malformed() {
        #expect(SessionID("s17") == SessionID(number: 17))
        #expect(SessionID("s0") == nil)
        #expect(SessionID("s-1") == nil)
        #expect(SessionID("s") == nil)
        #expect(SessionID("") == nil)
        #expect(SessionID("17") == nil)
        #expect(SessionID("s1x") == nil)
        #expect(SessionID("s99999999999999999999999") == nil)
        #expect(SessionID("s18446744073709551616") == nil)
        #expect(SessionID("s01") == nil)
        #expect(SessionID("s+1") == nil)
        #expect(SessionID(" s1") == nil)
        #expect(SessionID("s١") == nil)
    }

    @Test("order by number, so cursors page in creation order")
    func ordering() {
        let ids = ["s10", "s2", "s1"].compactMap { SessionID($0) }
        #expect(ids.sorted().map(\.description) == ["s1", "s2", "s10"])
    }
}
