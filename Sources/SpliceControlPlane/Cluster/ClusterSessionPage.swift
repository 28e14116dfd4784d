import SpliceCore
import SplicePeerClient
import Synchronization

/// One page of the cluster's session list, merged from every live node's page.
///
/// Ids order sessions by node and then by age (`ClusterNode.sessionNumberStride`), so the
/// page after a cursor is the next sessions of the cursor's node, then of the nodes after
/// it: the same cursor rule as one node's, and paging stays exact while sessions come and
/// go. A node that cannot be reached is named in
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

    /// Completes `pending` with the page after `cursor`. Ids order sessions by node, so the
    /// nodes are asked in that order, from the cursor's owner on (a node before it has
    /// nothing after the cursor), each for what the page still lacks, until it is full:
    /// most pages come from one node, and no node writes sessions that are then dropped.
    /// `local(n)` is this node's part of at most `n` sessions; peers are asked with the
    /// same query plus `scope=local`.
    func answer(_ request: HTTPRequest, limit: Int, cursor: SessionID?,
                local: @escaping @Sendable (Int) -> Part, into pending: PendingResponse) {
        let first = cursor.map(ClusterNode.owner(of:)) ?? 0
        let nodes = access.membership.liveNodes().filter { $0.number >= first }.sorted { $0.number < $1.number }
        let query = request.queryItems.filter { $0.name != "scope" && $0.name != "limit" }
        Walk(access: access, request: request, query: query, nodes: nodes, limit: limit, local: local,
             pending: pending).step(from: 0, parts: [], unreachable: [])
    }

    /// One page's walk over the nodes in id order.
    private struct Walk: Sendable {
        let access: ClusterAccess
        let request: HTTPRequest
        let query: [(name: String, value: String)]
        let nodes: [ClusterNode]
        let limit: Int
        let local: @Sendable (Int) -> Part
        let pending: PendingResponse

        func step(from index: Int, parts: [Part], unreachable: [String]) {
            let need = limit - parts.reduce(0) { $0 + $1.sessions.count }
            // A node that had more than the page could take: full, and more to come.
            if parts.last?.hasMore == true { return finish(parts, unreachable, more: true) }
            // Full at a node's end: more if any node follows (its first page may be empty).
            if need <= 0 { return finish(parts, unreachable, more: index < nodes.count) }
            guard index < nodes.count else { return finish(parts, unreachable, more: false) }
            let node = nodes[index]
            if node.number == access.membership.localNode.number {
                return step(from: index + 1, parts: parts + [local(need)], unreachable: unreachable)
            }
            let target = request.path + PeerRelay.encodedQuery(query + [("limit", "\(need)"), ("scope", "local")])
            let peerRequest = PeerClient.Request(method: "GET", baseURL: node.adminURL, target: target,
                                                 headers: access.relay.headers(of: request, extra: []))
            access.client.send(peerRequest, timeout: .seconds(3)) { result in
                let part: Part? = switch result {
                case .success(let response) where response.status == 200: Part.read(response.body)
                default: nil
                }
                if let part {
                    step(from: index + 1, parts: parts + [part], unreachable: unreachable)
                } else {
                    step(from: index + 1, parts: parts, unreachable: unreachable + [node.name])
                }
            }
        }

        private func finish(_ parts: [Part], _ unreachable: [String], more: Bool) {
            pending.complete(.bytes(200, ClusterSessionPage.merge(parts, limit: limit, unreachable: unreachable, more: more),
                                    contentType: "application/json"))
        }
    }

    /// The first `limit` sessions of all parts by id, with the cursor after them.
    /// `more` says whether sessions follow them (the walk knows); nil: whether any part
    /// had more, or more than `limit` came in.
    static func merge(_ parts: [Part], limit: Int, unreachable: [String], more: Bool? = nil) -> [UInt8] {
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
        let hasMore = more ?? (entries.count > limit || parts.contains(where: \.hasMore))
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
