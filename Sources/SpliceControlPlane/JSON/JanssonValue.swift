#if canImport(Glibc)
import Glibc
#endif
import CJansson

/// One owned reference to a jansson value.
///
/// Documents are built here without a `JSON` tree in between where that tree
/// would cost more than the document: a page of the session listing is ~15,000
/// values, and building them twice was a third of its time (bench/results/PROFILE.md).
/// Swift strings are valid UTF-8 by construction, so strings and keys go in
/// through jansson's `_nocheck` calls, which skip a second validation.
struct JanssonValue: ~Copyable {
    /// The value; this struct owns one reference to it.
    let pointer: UnsafeMutablePointer<json_t>

    /// Takes ownership of a reference jansson just returned.
    ///
    /// jansson returns NULL only when `malloc` fails; like a Swift allocation
    /// failure that is fatal, and there is no half-built document to answer with.
    init(owning pointer: UnsafeMutablePointer<json_t>?) {
        guard let pointer else { fatalError("jansson could not allocate a value") }
        self.pointer = pointer
    }

    deinit { sg_json_decref(pointer) }

    /// A new empty object.
    static func object() -> JanssonValue { JanssonValue(owning: json_object()) }

    /// A new empty array.
    static func array() -> JanssonValue { JanssonValue(owning: json_array()) }

    /// An integer.
    static func int(_ value: Int64) -> JanssonValue { JanssonValue(owning: json_integer(json_int_t(value))) }

    /// A string.
    static func string(_ text: String) -> JanssonValue {
        var text = text
        return JanssonValue(owning: text.withUTF8(newString))
    }

    /// A string from UTF-8 bytes the caller vouches for (may contain NUL).
    static func string(_ utf8: UnsafeBufferPointer<UInt8>) -> JanssonValue {
        JanssonValue(owning: newString(utf8))
    }

    private static func newString(_ utf8: UnsafeBufferPointer<UInt8>) -> UnsafeMutablePointer<json_t>? {
        utf8.withMemoryRebound(to: CChar.self) { chars in
            json_stringn_nocheck(chars.baseAddress ?? Self.emptyChars, chars.count)
        }
    }

    /// Another reference to the same value, for a value shared by many parents
    /// (jansson values are reference counted and the document is never mutated
    /// after it is built).
    func shared() -> JanssonValue { JanssonValue(owning: sg_json_incref(pointer)) }

    /// Adds `value` to this object under `key` (a later value for the same key replaces it).
    func set(_ key: StaticString, _ value: consuming JanssonValue) {
        let child = value.take()
        key.withUTF8Buffer { setMember($0, child) }
    }

    /// Adds `value` to this object under a run-time `key`.
    func set(_ key: String, _ value: consuming JanssonValue) {
        var key = key
        let child = value.take()
        key.withUTF8 { setMember($0, child) }
    }

    /// Hands `child`'s reference to this object under the UTF-8 `key`.
    private func setMember(_ key: UnsafeBufferPointer<UInt8>, _ child: UnsafeMutablePointer<json_t>) {
        key.withMemoryRebound(to: CChar.self) { chars in
            Self.check(json_object_setn_new_nocheck(pointer, chars.baseAddress ?? Self.emptyChars, chars.count, child))
        }
    }

    /// Appends `value` to this array.
    func append(_ value: consuming JanssonValue) {
        Self.check(json_array_append_new(pointer, value.take()))
    }

    /// The compact UTF-8 serialization, members in insertion order.
    func serializedBytes() -> [UInt8] {
        let flags = SG_JSON_COMPACT | SG_JSON_PRESERVE_ORDER | SG_JSON_ENCODE_ANY | SG_JSON_REAL_PRECISION_15
        // One pass: json_dumps allocates the text; sizing with json_dumpb first would
        // serialize everything twice.
        guard let text = json_dumps(pointer, flags) else { fatalError("jansson could not serialize a value") }
        defer { free(text) }
        return text.withMemoryRebound(to: UInt8.self, capacity: 1) { bytes in
            Array(UnsafeBufferPointer(start: bytes, count: strlen(text)))
        }
    }

    /// Gives up ownership: the caller now holds the reference.
    consuming func take() -> UnsafeMutablePointer<json_t> {
        let pointer = self.pointer
        discard self
        return pointer
    }

    /// The address handed to jansson for an empty string or key: an empty buffer
    /// may have no address, and jansson wants a pointer even for "".
    private static var emptyChars: UnsafePointer<CChar> {
        UnsafeRawPointer(("" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
    }

    /// jansson's setters fail only on allocation failure (or a wrong container type,
    /// which is a bug here); both are fatal, as above.
    private static func check(_ status: Int32) {
        if status != 0 { fatalError("jansson could not add a member") }
    }
}
