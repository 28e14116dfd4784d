import SpliceCore

/// Writes session objects of the API as JSON text straight into one growing buffer.
///
/// A listing page holds up to 1,000 sessions of ~15 values each; building them as a
/// jansson tree and then serializing it spent four fifths of the listing's time in
/// jansson and the allocator (bench/results/PROFILE.md). Here each value is appended as
/// text, the fixed parts are byte constants, and the rare non-empty hop, split and
/// capture lists still go through `JSON`. Every session object the API writes (listing,
/// single session, events, failover answers) comes from here, members always in this
/// order with `id` first, which the cluster's page merge relies on.
struct SessionWriter {
    /// The text written so far.
    private(set) var bytes: [UInt8] = []
    /// `"node":"n1",` when the sessions belong to a cluster node, else empty.
    private let nodeMember: [UInt8]

    /// A writer naming `node` (a cluster node) in every session; `capacity` bytes reserved.
    init(node: String? = nil, capacity: Int = 0) {
        var member: [UInt8] = []
        if let node {
            member = Array(#""node":"#.utf8)
            Self.appendString(node, to: &member)
            member.append(UInt8(ascii: ","))
        }
        nodeMember = member
        bytes.reserveCapacity(capacity)
    }

    /// Appends raw text.
    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends text already in JSON form.
    mutating func append(raw text: ArraySlice<UInt8>) {
        bytes.append(contentsOf: text)
    }

    /// Appends `text` as a JSON string.
    mutating func append(string text: String) {
        Self.appendString(text, to: &bytes)
    }

    /// Appends `id` as a JSON string, or `null`.
    mutating func append(id: SessionID?) {
        guard let id else { return append("null") }
        bytes.append(UInt8(ascii: "\""))
        appendIdentifier(id)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends one session object.
    mutating func append(_ session: SessionSnapshot) {
        append(#"{"id":""#)
        appendIdentifier(session.id)
        append(#"","#)
        bytes.append(contentsOf: nodeMember)
        append(#""listener":""#)
        appendIdentifier(session.listener)
        append(#"","client":"#)
        Self.appendString(session.client, to: &bytes)
        append(#","server":"#)
        Self.appendString(session.server, to: &bytes)
        append(#","state":""#)
        bytes.append(contentsOf: session.state.rawValue.utf8)
        append(#"","opened_at":""#)
        session.openedAt.withRFC3339 { bytes.append(contentsOf: $0) }
        append(#"","bytes":{"client_to_server":"#)
        appendInteger(session.bytes.clientToServer)
        append(#","server_to_client":"#)
        appendInteger(session.bytes.serverToClient)
        append(#"},"mediators":"#)
        appendList(session.hops.isEmpty ? nil : .array(session.hops.map(\.json)))
        append(#","splits":"#)
        appendList(session.splits.isEmpty ? nil : .array(session.splits.map(\.json)))
        append(#","captures":"#)
        appendList(session.captures.isEmpty ? nil : .array(session.captures.map(\.json)))
        bytes.append(UInt8(ascii: "}"))
    }

    private mutating func appendList(_ list: JSON?) {
        if let list {
            bytes.append(contentsOf: list.serializedBytes())
        } else {
            append("[]")
        }
    }

    private mutating func appendIdentifier<Kind>(_ id: Identifier<Kind>) {
        bytes.append(Kind.prefix.asciiValue ?? UInt8(ascii: "?"))
        appendDigits(id.number)
    }

    /// A counter as JSON writes it: clamped to Int64 as jansson's integers are.
    private mutating func appendInteger(_ value: UInt64) {
        appendDigits(min(value, UInt64(Int64.max)))
    }

    private mutating func appendDigits(_ value: UInt64) {
        var digits: (UInt64, Int) = (1, 1)
        while value / digits.0 >= 10 { digits.0 *= 10; digits.1 += 1 }
        var rest = value
        var scale = digits.0
        for _ in 0..<digits.1 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / scale))
            rest %= scale
            scale /= 10
        }
    }

    /// `text` as a JSON string: quotes, backslash-escapes for `"` and `\`, `\u00XX` for
    /// control characters, every other byte of its UTF-8 as it is (as jansson writes it).
    static func appendString(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                let hex = Array("0123456789ABCDEF".utf8)
                bytes.append(contentsOf: Array(#"\u00"#.utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 15)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension SessionSnapshot {
    /// The session object of the API as a `JSON` value (events embed it).
    func json(node: String?) -> JSON {
        var writer = SessionWriter(node: node)
        writer.append(self)
        // Written from valid parts, so it parses; a failure would be a writer bug.
        return (try? JSON.parse(writer.bytes)) ?? .null
    }
}
