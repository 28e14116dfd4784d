import CJansson
import SpliceCore

/// Writes session objects of the API straight into jansson.
///
/// A listing page holds up to 1,000 sessions; going through a `JSON` tree first
/// doubled the work, and most sessions share their listener id, state and empty
/// `mediators`/`splits` arrays, which one encoder builds once and shares by
/// reference count. Every session object the API writes (listing, single
/// session, events) comes from here.
struct SessionEncoder: ~Copyable {
    private var listeners: [ListenerID: UnsafeMutablePointer<json_t>] = [:]
    private var states: [SessionState: UnsafeMutablePointer<json_t>] = [:]
    private let emptyArray = JanssonValue.array()
    /// The cluster node the sessions run on, shared by all of them; nil alone.
    private let node: UnsafeMutablePointer<json_t>?

    /// An encoder with nothing shared yet; `node` names this cluster node in every session.
    init(node: String? = nil) {
        self.node = node.map { JanssonValue.string($0).take() }
    }

    deinit {
        for value in listeners.values { sg_json_decref(value) }
        for value in states.values { sg_json_decref(value) }
        if let node { sg_json_decref(node) }
    }

    /// The session object.
    mutating func encode(_ session: SessionSnapshot) -> JanssonValue {
        let object = JanssonValue.object()
        object.set("id", session.id.jansson)
        if let node { object.set("node", JanssonValue(owning: sg_json_incref(node))) }
        object.set("listener", Self.shared(session.listener, in: &listeners) { $0.jansson })
        object.set("client", .string(session.client))
        object.set("server", .string(session.server))
        object.set("state", Self.shared(session.state, in: &states) { .string($0.rawValue) })
        object.set("opened_at", session.openedAt.withRFC3339 { JanssonValue.string($0) })
        let bytes = JanssonValue.object()
        bytes.set("client_to_server", .int(Int64(clamping: session.bytes.clientToServer)))
        bytes.set("server_to_client", .int(Int64(clamping: session.bytes.serverToClient)))
        object.set("bytes", bytes)
        object.set("mediators", session.hops.isEmpty ? emptyArray.shared() : JSON.array(session.hops.map(\.json)).jansson())
        object.set("splits", session.splits.isEmpty ? emptyArray.shared() : JSON.array(session.splits.map(\.json)).jansson())
        object.set("captures", session.captures.isEmpty ? emptyArray.shared() : JSON.array(session.captures.map(\.json)).jansson())
        return object
    }

    /// Another reference to the value cached for `key`, built by `make` the first time.
    private static func shared<Key: Hashable>(
        _ key: Key, in cache: inout [Key: UnsafeMutablePointer<json_t>], _ make: (Key) -> JanssonValue
    ) -> JanssonValue {
        let value: UnsafeMutablePointer<json_t>
        if let cached = cache[key] {
            value = cached
        } else {
            value = make(key).take()  // the cache's reference, released in deinit
            cache[key] = value
        }
        return JanssonValue(owning: sg_json_incref(value))
    }
}

extension SessionSnapshot {
    /// The session object of the API as a `JSON` value (events embed it).
    func json(node: String?) -> JSON {
        var encoder = SessionEncoder(node: node)
        let value = encoder.encode(self)
        return JSON(jansson: value.pointer)
    }
}

extension Identifier {
    /// `s17` as a jansson string, formatted without a Swift string in between.
    var jansson: JanssonValue {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { text in
            text[0] = Kind.prefix.asciiValue ?? UInt8(ascii: "?")
            var digits = 1
            var rest = number / 10
            while rest > 0 { digits += 1; rest /= 10 }
            rest = number
            for index in stride(from: digits, to: 0, by: -1) {
                text[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            return JanssonValue.string(UnsafeBufferPointer(rebasing: text[...digits]))
        }
    }
}
