import Foundation
import SpliceCore
import Testing

@testable import SpliceControlPlane

@Suite("Session writer")
struct SessionWriterTests {
    private func session(_ number: UInt64, listener: UInt64 = 1, hops: [HopSnapshot] = []) -> SessionSnapshot {
        SessionSnapshot(
            id: SessionID(number: number), listener: ListenerID(number: listener),
            client: "127.0.0.1:40000", server: "[::1]:6379", state: .halfClosed,
            openedAt: Date(timeIntervalSince1970: 1_795_000_000.9),
            bytes: ByteCounts(clientToServer: 7, serverToClient: UInt64.max), hops: hops)
    }

    private func text(_ snapshot: SessionSnapshot, node: String? = nil) -> [UInt8] {
        var writer = SessionWriter(node: node)
        writer.append(snapshot)
        return writer.bytes
    }

    @Test func writesEveryField() throws {
        let text = String(decoding: text(session(17)), as: UTF8.self)
        #expect(text == #"{"id":"s17","listener":"l1","client":"127.0.0.1:40000","server":"[::1]:6379","#
            + #""state":"half_closed","opened_at":"2026-11-18T11:06:40Z","#
            + #""bytes":{"client_to_server":7,"server_to_client":9223372036854775807},"mediators":[],"splits":[],"captures":[]}"#)
    }

    @Test func listsLiveCaptures() throws {
        var snapshot = session(3)
        snapshot.captures = [CaptureSnapshot(
            id: CaptureID(number: 2), listener: nil, request: CaptureRequest(points: .hops, directions: .clientToServer),
            startedAt: Date(timeIntervalSince1970: 1_795_000_000), packets: 12, dropped: 3)]
        let parsed = try JSON.parse(text(snapshot))
        let capture = try #require(parsed["captures"]?.array?.first)
        #expect(capture == [
            "id": "c2", "listener": nil, "points": "hops", "direction": "client_to_server",
            "buffer_bytes": .int(Int64(CaptureRequest.defaultBufferBytes)), "started_at": "2026-11-18T11:06:40Z",
            "packets": 12, "dropped": 3,
        ])
    }

    @Test func namesTheNodeAfterTheID() throws {
        let written = String(decoding: text(session(3_000_000_000_017), node: "gw \"3\""), as: UTF8.self)
        #expect(written.hasPrefix(#"{"id":"s3000000000017","node":"gw \"3\"","listener":"l1","#))
        #expect(try JSON.parse(written)["node"] == "gw \"3\"")
    }

    @Test func stringsAreEscapedAsJanssonEscapesThem() throws {
        // Addresses are plain ASCII, but a node name or a future field may not be.
        for sample in ["plain", "quote \" and \\ back", "tab\tnew\nline\r", "\u{1}\u{1f}\u{7f}", "é ✓ 😀", ""] {
            var written: [UInt8] = []
            SessionWriter.appendString(sample, to: &written)
            #expect(written == JSON.string(sample).serializedBytes(), "\(sample.debugDescription)")
            #expect(try JSON.parse(written) == .string(sample))
        }
    }

    @Test func countersBeyondInt64AreClampedAsBefore() throws {
        var snapshot = session(1)
        snapshot.bytes = ByteCounts(clientToServer: 0, serverToClient: UInt64.max)
        let parsed = try JSON.parse(text(snapshot))
        #expect(parsed["bytes"]?["client_to_server"] == 0)
        #expect(parsed["bytes"]?["server_to_client"] == .int(Int64.max))
    }

    @Test func manySessionsParseBack() throws {
        var writer = SessionWriter()
        writer.append("[")
        let numbers: [UInt64] = [1, 9, 10, 99, 100, UInt64.max]
        for (position, number) in numbers.enumerated() {
            if position > 0 { writer.append(",") }
            writer.append(session(number, listener: number % 2 + 1))
        }
        writer.append("]")
        let items = try #require(try JSON.parse(writer.bytes).array)
        #expect(items.compactMap { $0["id"]?.string }
            == ["s1", "s9", "s10", "s99", "s100", "s18446744073709551615"])
        #expect(items.compactMap { $0["listener"]?.string } == ["l2", "l2", "l1", "l2", "l1", "l2"])
        #expect(items.allSatisfy { $0["mediators"] == [] && $0["splits"] == [] && $0["state"] == "half_closed" })
    }

    @Test func clusterPagesMergeByIDWithTheCursorAfterThem() throws {
        func page(_ numbers: [UInt64], more: Bool) -> [UInt8] {
            var writer = SessionWriter(node: "n")
            writer.append(#"{"sessions":["#)
            for (position, number) in numbers.enumerated() {
                if position > 0 { writer.append(",") }
                var snapshot = session(number)
                snapshot.client = "odd } ] \" { [ client"
                writer.append(snapshot)
            }
            writer.append(#"],"next_cursor":"#)
            writer.append(id: more ? SessionID(number: numbers.last!) : nil)
            writer.append("}")
            return writer.bytes
        }
        let a = try #require(ClusterSessionPage.Part.scan(page([1_000_000_000_001, 1_000_000_000_005], more: false)))
        let b = try #require(ClusterSessionPage.Part.scan(page([2_000_000_000_002, 2_000_000_000_003], more: true)))
        let empty = try #require(ClusterSessionPage.Part.scan(page([], more: false)))
        #expect(a.sessions.map(\.number) == [1_000_000_000_001, 1_000_000_000_005])
        let merged = try JSON.parse(ClusterSessionPage.merge([b, empty, a], limit: 3, unreachable: ["z", "y"]))
        #expect(merged["sessions"]?.array?.compactMap { $0["id"]?.string }
            == ["s1000000000001", "s1000000000005", "s2000000000002"])
        #expect(merged["sessions"]?.array?.first?["client"] == "odd } ] \" { [ client")
        #expect(merged["next_cursor"] == "s2000000000002")
        #expect(merged["unreachable_nodes"] == ["y", "z"])
        // Everything fits and nobody has more: the last page.
        let last = try JSON.parse(ClusterSessionPage.merge([a, empty], limit: 5, unreachable: []))
        #expect(last["next_cursor"] == .null)
        #expect(last["unreachable_nodes"] == nil)
        // A peer that writes its page differently (another version) is parsed instead.
        let other = try #require(ClusterSessionPage.Part.read(Array(
            #"{"next_cursor":"s3000000000009", "sessions":[{"state":"open","id":"s3000000000009"}]}"#.utf8)))
        #expect(other.sessions.map(\.number) == [3_000_000_000_009])
        #expect(other.hasMore)
        let mixed = try JSON.parse(ClusterSessionPage.merge([other, a], limit: 10, unreachable: []))
        #expect(mixed["sessions"]?.array?.last?["state"] == "open")
        // Anything else is not a page this node can merge.
        for garbage in ["", "{}", #"{"sessions":[{"id":"x1"}],"next_cursor":null}"#,
                        #"{"sessions":[{"id":"s1"],"next_cursor":null}"#, #"{"sessions":[],"next_cursor":5}"#] {
            #expect(ClusterSessionPage.Part.read(Array(garbage.utf8)) == nil, "\(garbage)")
        }
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
