/// Whether a request fits an MHD connection memory pool, judged from its first bytes (the
/// whole head, maybe some body), so the acceptor can give it a daemon whose pools are large
/// enough (`HTTPServer.Configuration.compactConnectionMemory`), or refuse it.
///
/// MHD 0.9.75 reads into a buffer of half the pool and parses the head in place there; from
/// the other half it takes a 64-byte record for every header line, query argument and
/// cookie, a copy of the Cookie header, and the response's head. A pool that runs out gets
/// MHD's own HTML 431, or, for query arguments, no answer at all. The estimate counts a
/// record for every line feed, `&`, `;` and `,` of the head (each may start a header, an
/// argument or a cookie) and keeps `slack` of each half free: it errs high.
enum MHDPoolNeed {
    /// Whether the request starting with `bytes`, whose head is complete, fits a `pool`-byte pool.
    static func fits(_ bytes: UnsafeRawBufferPointer, pool: Int) -> Bool {
        let half = pool / 2 - slack
        let head = headLength(bytes)
        guard head <= half else { return false }
        var records = responseRecords
        var cookieBytes = 0
        var lineStart = 0
        for index in 0..<head {
            switch bytes[index] {
            case UInt8(ascii: "&"), UInt8(ascii: ";"), UInt8(ascii: ","): records += 1
            case UInt8(ascii: "\n"):
                records += 1
                if isCookieLine(bytes, from: lineStart) { cookieBytes += index - lineStart }
                lineStart = index + 1
            default: break
            }
        }
        return cookieBytes + recordBytes * records <= half
    }

    /// What MHD keeps per header, argument or cookie (`struct MHD_HTTP_Req_Header`, rounded up).
    static let recordBytes = 64
    /// Records' worth of room kept for the response head.
    static let responseRecords = 16
    /// Bytes of each half of the pool left for MHD's own bookkeeping.
    static let slack = 1024

    /// The bytes up to the end of the head (the blank line), or all of them. Empty lines
    /// before the request line, which the screen lets through (RFC 9112 §2.2), are part of
    /// it: the end is the first blank line after the request line.
    private static func headLength(_ bytes: UnsafeRawBufferPointer) -> Int {
        var start = 0
        while start + 1 < bytes.count, bytes[start] == UInt8(ascii: "\r"), bytes[start + 1] == UInt8(ascii: "\n") {
            start += 2
        }
        var index = start + 3
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\n"), bytes[index - 1] == UInt8(ascii: "\r"),
               bytes[index - 2] == UInt8(ascii: "\n"), bytes[index - 3] == UInt8(ascii: "\r") {
                return index + 1
            }
            index += 1
        }
        return bytes.count
    }

    /// Whether the line at `start` is a Cookie header (name compared without case).
    private static func isCookieLine(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Bool {
        let name = "cookie:".utf8
        guard start + name.count <= bytes.count else { return false }
        return zip(bytes[start..<(start + name.count)], name).allSatisfy { HTTPHeaders.asciiLowercased($0) == $1 }
    }
}
