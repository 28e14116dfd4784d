#if canImport(Glibc)
import Glibc
#endif
import CJansson
import SpliceCore
import Synchronization

/// One page of the cluster's session list, merged from every live node's page.
///
/// Ids order sessions by node and then by age (`ClusterNode.sessionNumberStride`), so every
/// node is asked for its first `limit` sessions after the cursor, and the merged page is
/// the first `limit` of all of them: the same cursor rule as one node's, and paging stays
/// exact while sessions come and go. A node that cannot be reached is named in
/// `unreachable_nodes` instead of failing the listing.
struct ClusterSessionPage: Sendable {
    let access: ClusterAccess

    /// One node's part: its sessions (an owned jansson array) and whether it has more.
    final class Part: @unchecked Sendable {
        // @unchecked: the array is only read once every part is in, under the merge's lock.
        let sessions: UnsafeMutablePointer<json_t>
        let hasMore: Bool

        init(owning sessions: UnsafeMutablePointer<json_t>, hasMore: Bool) {
            self.sessions = sessions
            self.hasMore = hasMore
        }

        deinit { sg_json_decref(sessions) }

        /// A peer's `{"sessions": […], "next_cursor": …}`; nil when it is not one.
        static func parse(_ body: [UInt8]) -> Part? {
            var error = json_error_t()
            let root = body.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { json_loadb($0.baseAddress, $0.count, 0, &error) }
            }
            guard let root else { return nil }
            defer { sg_json_decref(root) }
            guard let sessions = json_object_get(root, "sessions"), sg_json_typeof(sessions) == JSON_ARRAY else {
                return nil
            }
            let cursor = json_object_get(root, "next_cursor")
            return Part(owning: sg_json_incref(sessions)!, hasMore: cursor.map { sg_json_typeof($0) == JSON_STRING } ?? false)
        }
    }

    /// Completes `pending` with the merged page: `local` is this node's part; the peers are
    /// asked with the same `query` plus `scope=local`.
    func answer(_ request: HTTPRequest, local: Part, limit: Int, into pending: PendingResponse) {
        let peers = access.peers
        let parts = Mutex<(parts: [Part], unreachable: [String], waiting: Int)>(([local], [], peers.count))
        let finish: @Sendable () -> Void = {
            let (all, unreachable) = parts.withLock { ($0.parts, $0.unreachable) }
            pending.complete(.bytes(200, Self.merge(all, limit: limit, unreachable: unreachable),
                                    contentType: "application/json"))
        }
        guard !peers.isEmpty else { return finish() }
        var query = request.queryItems.filter { $0.name != "scope" && $0.name != "access_token" }
        query.append(("scope", "local"))
        for node in peers {
            var headers: [(name: String, value: String)] = [(PeerRelay.forwardedHeader, access.membership.localNode.name)]
            if let authorization = request.headers["Authorization"] { headers.append(("Authorization", authorization)) }
            let peerRequest = PeerClient.Request(method: .GET, baseURL: node.adminURL,
                                                 target: request.path + PeerRelay.encodedQuery(query), headers: headers)
            access.client.send(peerRequest, timeout: .seconds(3)) { result in
                let part: Part? = switch result {
                case .success(let response) where response.status == 200: Part.parse(response.body)
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
        var entries: [(number: UInt64, value: UnsafeMutablePointer<json_t>)] = []
        for part in parts {
            for index in 0..<json_array_size(part.sessions) {
                guard let session = json_array_get(part.sessions, index),
                      let text = json_string_value(json_object_get(session, "id")),
                      let id = SessionID(String(cString: text)) else { continue }
                entries.append((id.number, session))
            }
        }
        entries.sort { $0.number < $1.number }
        let page = JanssonValue.array()
        for entry in entries.prefix(limit) {
            page.append(JanssonValue(owning: sg_json_incref(entry.value)))
        }
        let hasMore = entries.count > limit || parts.contains(where: \.hasMore)
        let body = JanssonValue.object()
        body.set("sessions", page)
        if hasMore, let last = entries.prefix(limit).last {
            body.set("next_cursor", SessionID(number: last.number).jansson)
        } else {
            body.set("next_cursor", JSON.null.jansson())
        }
        if !unreachable.isEmpty {
            let names = JanssonValue.array()
            for name in unreachable.sorted() { names.append(.string(name)) }
            body.set("unreachable_nodes", names)
        }
        return body.serializedBytes()
    }
}
