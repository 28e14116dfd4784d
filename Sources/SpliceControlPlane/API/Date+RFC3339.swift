import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Date {
    /// RFC 3339 in UTC with second precision, as every timestamp in the API is written.
    var rfc3339: String {
        withRFC3339 { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the RFC 3339 text (`2026-11-27T10:58:43Z`) in a stack buffer.
    ///
    /// Formatted by hand from `gmtime_r`: a session listing writes one per session, and
    /// Foundation's formatter (or string interpolation) cost more than the rest of the
    /// session object together.
    func withRFC3339<R: ~Copyable>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var seconds = time_t(timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { text in
            func put(_ value: Int32, digits: Int, at start: Int) {
                var rest = max(value, 0)
                for index in stride(from: start + digits - 1, through: start, by: -1) {
                    text[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
            }
            put(parts.tm_year + 1900, digits: 4, at: 0)
            put(parts.tm_mon + 1, digits: 2, at: 5)
            put(parts.tm_mday, digits: 2, at: 8)
            put(parts.tm_hour, digits: 2, at: 11)
            put(parts.tm_min, digits: 2, at: 14)
            put(parts.tm_sec, digits: 2, at: 17)
            (text[4], text[7], text[10]) = (UInt8(ascii: "-"), UInt8(ascii: "-"), UInt8(ascii: "T"))
            (text[13], text[16], text[19]) = (UInt8(ascii: ":"), UInt8(ascii: ":"), UInt8(ascii: "Z"))
            return body(UnsafeBufferPointer(text))
        }
    }
}
