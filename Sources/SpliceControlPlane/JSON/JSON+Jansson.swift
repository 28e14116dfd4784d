#if canImport(Glibc)
import Glibc
#endif
import CJansson
import SpliceCore

extension JSON {
    /// Parses one JSON text (any top-level value) through jansson.
    ///
    /// Duplicate keys and trailing non-whitespace are rejected. Errors throw
    /// `APIError.malformed` with jansson's message, line and column.
    public static func parse(_ bytes: some Collection<UInt8>) throws(APIError) -> JSON {
        let flags = SG_JSON_REJECT_DUPLICATES | SG_JSON_DECODE_ANY | SG_JSON_ALLOW_NUL
        var error = json_error_t()
        // One spare byte so the buffer never has a nil base; jansson reads `count` only.
        let storage = Array(bytes) + [0]
        let root = storage.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                json_loadb(chars.baseAddress, chars.count - 1, flags, &error)
            }
        }
        guard let root else { throw .malformed(describe(error)) }
        defer { sg_json_decref(root) }
        return JSON(jansson: root)
    }

    /// Parses a JSON text held in a string.
    public static func parse(_ text: String) throws(APIError) -> JSON {
        try parse(Array(text.utf8))
    }

    /// The compact UTF-8 serialization, members in insertion order.
    public func serializedBytes() -> [UInt8] {
        jansson().serializedBytes()
    }

    /// The compact serialization as a string.
    public func serialized() -> String {
        String(decoding: serializedBytes(), as: UTF8.self)
    }

    private static func describe(_ error: json_error_t) -> String {
        let text = withUnsafeBytes(of: error.text) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return "invalid JSON at line \(error.line), column \(error.column): \(text)"
    }

    /// Copies a jansson tree (borrowed, not consumed) into a Swift value.
    init(jansson value: UnsafeMutablePointer<json_t>) {
        switch sg_json_typeof(value) {
        case JSON_OBJECT:
            // Parsed with JSON_REJECT_DUPLICATES, so the keys are distinct.
            var members: [(key: String, value: JSON)] = []
            var iterator = json_object_iter(value)
            while let current = iterator {
                let keyPointer = json_object_iter_key(current)
                let keyLength = json_object_iter_key_len(current)
                let key = keyPointer.map { pointer in
                    pointer.withMemoryRebound(to: UInt8.self, capacity: keyLength) {
                        String(decoding: UnsafeBufferPointer(start: $0, count: keyLength), as: UTF8.self)
                    }
                } ?? ""
                if let member = json_object_iter_value(current) {
                    members.append((key, JSON(jansson: member)))
                }
                iterator = json_object_iter_next(value, current)
            }
            self = .object(JSONObject(uniqueMembers: members))
        case JSON_ARRAY:
            let count = json_array_size(value)
            self = .array((0..<count).compactMap { json_array_get(value, $0).map(JSON.init(jansson:)) })
        case JSON_STRING:
            let length = json_string_length(value)
            self = .string(json_string_value(value).map { pointer in
                pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                    String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
                }
            } ?? "")
        case JSON_INTEGER: self = .int(Int64(json_integer_value(value)))
        case JSON_REAL: self = .double(json_real_value(value))
        case JSON_TRUE: self = .bool(true)
        case JSON_FALSE: self = .bool(false)
        default: self = .null
        }
    }

    /// A new jansson tree holding this value.
    func jansson() -> JanssonValue {
        switch self {
        case .null: return JanssonValue(owning: json_null())
        case .bool(let value): return JanssonValue(owning: value ? json_true() : json_false())
        case .int(let value): return .int(value)
        case .double(let value):
            // jansson cannot represent NaN or infinities (json_real returns NULL).
            return JanssonValue(owning: value.isFinite ? json_real(value) : json_null())
        case .string(let value): return .string(value)
        case .array(let items):
            let array = JanssonValue.array()
            for item in items { array.append(item.jansson()) }
            return array
        case .object(let members):
            let object = JanssonValue.object()
            for (key, member) in members { object.set(key, member.jansson()) }
            return object
        }
    }
}
