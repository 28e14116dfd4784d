import SpliceCore
import SplicePeerClient
import Synchronization

/// One page of the cluster's session list, merged from every live node's page.
///
/// Ids order sessions by node and then by age (`ClusterNode.sessionNumberStride`), so every
/// node is asked for its first `limit` sessions after the cursor, and the merged page is
/// the first `limit` of all of them: the same cursor rule as one node's, and paging stays
/// exact while sessions come and go. A node that cannot be reached is named in
/// `unreachable_nodes` instead of failing the listing. Pages are merged as text: each
/// session object is copied as it came, never parsed into a tree.
struct ClusterSessionPage: Sendable {
    let access: ClusterAccess

    /// One node's part: its page's text, where each session object lies in it, and
    /// whether the node has more after them.
    struct Part: Sendable {
        let text: [UInt8]
        let sessions: [(number: UInt64, range: Range<Int>)]
        let hasMore: Bool

        /// The page as this node answers it alone.
        var document: [UInt8] { text }

        /// A peer's page: scanned as `SessionWriter` writes it, else (a peer of another
        /// version, say) parsed and written again; nil when it is not a page.
        static func read(_ text: [UInt8]) -> Part? {
            if let part = scan(text) { return part }
            guard let page = try? JSON.parse(text), let sessions = page["sessions"]?.array,
                  let cursor = page["next_cursor"], cursor == .null || cursor.string != nil else { return nil }
            var writer = SessionWriter()
            var ranges: [(number: UInt64, range: Range<Int>)] = []
            for session in sessions {
                guard let id = session["id"]?.string.flatMap(SessionID.init) else { return nil }
                let start = writer.bytes.count
                writer.append(raw: session.serializedBytes()[...])
                ranges.append((id.number, start..<writer.bytes.count))
            }
            return Part(text: writer.bytes, sessions: ranges, hasMore: cursor.string != nil)
        }

        /// A peer's `{"sessions":[…],"next_cursor":…}` as `SessionWriter` writes it (each
        /// session object starting with its id); nil when it is not one.
        static func scan(_ text: [UInt8]) -> Part? {
            let head = Array(#"{"sessions":["#.utf8)
            guard text.starts(with: head) else { return nil }
            var index = head.count
            var sessions: [(number: UInt64, range: Range<Int>)] = []
            if index < text.count, text[index] == UInt8(ascii: "]") {
                index += 1
            } else {
                while true {
                    guard let end = objectEnd(text, from: index), let number = leadingID(text, at: index) else {
                        return nil
                    }
                    sessions.append((number, index..<end))
                    guard end < text.count else { return nil }
                    index = end + 1
                    if text[end] == UInt8(ascii: "]") { break }
                    guard text[end] == UInt8(ascii: ",") else { return nil }
                }
            }
            let rest = text[index...]
            let more = Array(#","next_cursor":""#.utf8)
            let last = Array(#","next_cursor":null"#.utf8)
            if rest.starts(with: more) { return Part(text: text, sessions: sessions, hasMore: true) }
            if rest.starts(with: last) { return Part(text: text, sessions: sessions, hasMore: false) }
            return nil
        }

        /// The index just past the object starting at `start`, by brace depth outside strings.
        private static func objectEnd(_ text: [UInt8], from start: Int) -> Int? {
            guard start < text.count, text[start] == UInt8(ascii: "{") else { return nil }
            var depth = 0
            var inString = false
            var index = start
            while index < text.count {
                let byte = text[index]
                if inString {
                    if byte == UInt8(ascii: "\\") {
                        index += 1
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                } else if byte == UInt8(ascii: "\"") {
                    inString = true
                } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                    depth += 1
                } else if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                    depth -= 1
                    if depth == 0 { return index + 1 }
                }
                index += 1
            }
            return nil
        }

        /// The session number of `{"id":"s17",…` at `start`.
        private static func leadingID(_ text: [UInt8], at start: Int) -> UInt64? {
            let head = Array(#"{"id":"s"#.utf8)
            guard text[start...].starts(with: head) else { return nil }
            var index = start + head.count
            var digits = ""
            while index < text.count, text[index] >= UInt8(ascii: "0"), text[index] <= UInt8(ascii: "9") {
                digits.unicodeScalars.append(UnicodeScalar(text[index]))
                index += 1
            }
            guard index < text.count, text[index] == UInt8(ascii: "\"") else { return nil }
            return SessionID("s" + digits)?.number
        }
    }

    /// Completes `pending` with the merged page: `local` is this node's part; the peers are
    /// asked with the same query plus `scope=local`.
    func answer(_ request: HTTPRequest, local: Part, limit: Int, into pending: PendingResponse) {
        let peers = access.peers
        let parts = Mutex<(parts: [Part], unreachable: [String], waiting: Int)>(([local], [], peers.count))
        let finish: @Sendable () -> Void = {
            let (all, unreachable) = parts.withLock { ($0.parts, $0.unreachable) }
            pending.complete(.bytes(200, Self.merge(all, limit: limit, unreachable: unreachable),
                                    contentType: "application/json"))
        }
        guard !peers.isEmpty else { return finish() }
        var query = request.queryItems.filter { $0.name != "scope" }
        query.append(("scope", "local"))
        for node in peers {
            let peerRequest = PeerClient.Request(method: "GET", baseURL: node.adminURL,
                                                 target: request.path + PeerRelay.encodedQuery(query),
                                                 headers: access.relay.headers(of: request, extra: []))
            access.client.send(peerRequest, timeout: .seconds(3)) { result in
                let part: Part? = switch result {
                case .success(let response) where response.status == 200: Part.read(response.body)
                default: nil
                }
                let done = parts.withLock { state -> Bool in
                    if let part { state.parts.append(part) } else { state.unreachable.append(node.name) }
                    state.waiting -= 1
                    return state.waiting == 0
                }
                if done { finish() }
            }
        }
    }

    /// The first `limit` sessions of all parts by id, with the cursor after them.
    static func merge(_ parts: [Part], limit: Int, unreachable: [String]) -> [UInt8] {
        var entries: [(number: UInt64, part: Int, range: Range<Int>)] = []
        for (index, part) in parts.enumerated() {
            for session in part.sessions { entries.append((session.number, index, session.range)) }
        }
        entries.sort { $0.number < $1.number }
        let page = entries.prefix(limit)
        var writer = SessionWriter(capacity: page.reduce(64) { $0 + $1.range.count + 1 })
        writer.append(#"{"sessions":["#)
        for (position, entry) in page.enumerated() {
            if position > 0 { writer.append(",") }
            writer.append(raw: parts[entry.part].text[entry.range])
        }
        writer.append(#"],"next_cursor":"#)
        let hasMore = entries.count > limit || parts.contains(where: \.hasMore)
        writer.append(id: hasMore ? page.last.map { SessionID(number: $0.number) } : nil)
        if !unreachable.isEmpty {
            writer.append(#","unreachable_nodes":["#)
            for (position, name) in unreachable.sorted().enumerated() {
                if position > 0 { writer.append(",") }
                writer.append(string: name)
            }
            writer.append("]")
        }
        writer.append("}")
        return writer.bytes
    }
}
