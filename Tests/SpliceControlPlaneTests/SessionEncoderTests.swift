import Foundation
import SpliceCore
import Testing

@testable import SpliceControlPlane

@Suite("Session encoder")
struct SessionEncoderTests {
    private func session(_ number: UInt64, listener: UInt64 = 1, hops: [HopSnapshot] = []) -> SessionSnapshot {
        SessionSnapshot(
            id: SessionID(number: number), listener: ListenerID(number: listener),
            client: "127.0.0.1:40000", server: "[::1]:6379", state: .halfClosed,
            openedAt: Date(timeIntervalSince1970: 1_795_000_000.9),
            bytes: ByteCounts(clientToServer: 7, serverToClient: UInt64.max), hops: hops)
    }

    @Test func writesEveryField() throws {
        var encoder = SessionEncoder()
        let text = String(decoding: encoder.encode(session(17)).serializedBytes(), as: UTF8.self)
        #expect(text == #"{"id":"s17","listener":"l1","client":"127.0.0.1:40000","server":"[::1]:6379","#
            + #""state":"half_closed","opened_at":"2026-11-18T11:06:40Z","#
            + #""bytes":{"client_to_server":7,"server_to_client":9223372036854775807},"mediators":[],"splits":[],"captures":[]}"#)
    }

    @Test func listsLiveCaptures() throws {
        var snapshot = session(3)
        snapshot.captures = [CaptureSnapshot(
            id: CaptureID(number: 2), listener: nil, request: CaptureRequest(points: .hops, directions: .clientToServer),
            startedAt: Date(timeIntervalSince1970: 1_795_000_000), packets: 12, dropped: 3)]
        var encoder = SessionEncoder()
        let parsed = try JSON.parse(encoder.encode(snapshot).serializedBytes())
        let capture = try #require(parsed["captures"]?.array?.first)
        #expect(capture == [
            "id": "c2", "listener": nil, "points": "hops", "direction": "client_to_server",
            "buffer_bytes": .int(Int64(CaptureRequest.defaultBufferBytes)), "started_at": "2026-11-18T11:06:40Z",
            "packets": 12, "dropped": 3,
        ])
    }

    @Test func sharedValuesStayCorrectAcrossSessions() throws {
        // Listener ids, states and empty arrays are shared between sessions of one
        // document; each session must still read as its own.
        var encoder = SessionEncoder()
        let list = JanssonValue.array()
        for number in [1, 9, 10, 99, 100, UInt64.max] {
            list.append(encoder.encode(session(number, listener: number % 2 + 1)))
        }
        let parsed = try JSON.parse(list.serializedBytes())
        let items = try #require(parsed.array)
        #expect(items.compactMap { $0["id"]?.string }
            == ["s1", "s9", "s10", "s99", "s100", "s18446744073709551615"])
        #expect(items.compactMap { $0["listener"]?.string } == ["l2", "l2", "l1", "l2", "l1", "l2"])
        #expect(items.allSatisfy { $0["mediators"] == [] && $0["splits"] == [] && $0["state"] == "half_closed" })
    }

    @Test func timestampsMatchFoundation() {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        for seconds in [0, 951_782_400, 1_795_000_000, 4_102_444_799] as [TimeInterval] {
            let date = Date(timeIntervalSince1970: seconds + 0.75)
            #expect(date.rfc3339 == formatter.string(from: Date(timeIntervalSince1970: seconds)))
        }
    }
}
