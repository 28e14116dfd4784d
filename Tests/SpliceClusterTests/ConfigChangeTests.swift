import SpliceCore
import Testing

@testable import SpliceCluster

@Suite("ConfigChange")
struct ConfigChangeTests {
    @Test(arguments: [
        ConfigChange.listenerAdded(ListenerID(number: 7)),
        .listenerRemoved(ListenerID(number: 3), closeSessions: true),
        .listenerRemoved(ListenerID(number: 3), closeSessions: false),
        .mediatorAdded("upper"),
        .mediatorRemoved("a.b-c_d"),
    ])
    func payloadReadsBack(_ change: ConfigChange) throws {
        let parsed = try #require(ConfigChange.parse(change.payload(origin: "node a")))
        #expect(parsed.change == change)
        #expect(parsed.origin == "node a")
    }

    @Test(arguments: [
        "", "not json", "{}", #"{"origin": "n1"}"#, #"{"origin": "n1", "change": "listener_added"}"#,
        #"{"origin": "n1", "change": "listener_added", "id": 0}"#,
        #"{"origin": "n1", "change": "bind_changed", "id": 1}"#, #"{"change": "mediator_added", "name": "x"}"#,
    ])
    func unknownPayloadsAreNil(_ payload: String) {
        #expect(ConfigChange.parse(payload) == nil)
    }
}
