import SpliceCore

/// Checks a request head, strictly, before libmicrohttpd sees it.
///
/// MHD 0.9.75 is lenient where RFC 9112 is not (whitespace before a colon,
/// `Content-Length` next to `Transfer-Encoding`, `+5` as a length) and
/// answers what it cannot parse with its own HTML pages. Every head passes
/// through here first; what is refused here is answered as problem+json and
/// its connection closed, so MHD only ever parses heads that are plain,
/// well-formed HTTP/1.0 or 1.1.
struct RequestHeadScreen: Sendable {
    /// What to do with the bytes received so far.
    enum Verdict: Equatable, Sendable {
        /// No end of head yet, and nothing wrong so far.
        case incomplete
        /// A well-formed head; MHD may have the connection.
        case accept
        /// Answer this problem and close the connection.
        case reject(Problem)
    }

    /// The longest request target accepted (414 past it).
    let maxTargetBytes: Int
    /// The most header bytes accepted, counted as `HTTPServer.Context` does (431 past it).
    let maxHeaderBytes: Int
    /// The largest declared body accepted (413 past it).
    let maxBodyBytes: Int

    /// The most header lines accepted (431 past it). MHD keeps each header in its
    /// connection's memory pool with some overhead: thousands of tiny ones would overflow
    /// the pool below `maxHeaderBytes`, and MHD would answer with its own HTML 431.
    static let maxHeaderLines = 100

    /// The most bytes a head may take, empty lines before it included.
    var maxHeadBytes: Int { maxTargetBytes + maxHeaderBytes + 1024 }

    /// Judges `bytes`, the start of what the client sent; `peerClosed` when
    /// it will send nothing more.
    ///
    /// `searchedUpTo`: how many of `bytes` an earlier call already searched
    /// for the end of the head without finding it; only what follows (and
    /// the three bytes before, where the end may start) is searched again,
    /// so a head arriving a byte at a time costs linear, not quadratic, time.
    func verdict(_ bytes: UnsafeRawBufferPointer, peerClosed: Bool, searchedUpTo: Int = 0) -> Verdict {
        var start = 0
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        while start < bytes.count, bytes[start] == .cr {
            guard start + 1 < bytes.count else { return peerClosed ? .reject(Self.malformed("no request")) : .incomplete }
            guard bytes[start + 1] == .lf else { return .reject(Self.malformed("a CR without its LF")) }
            start += 2
        }
        if let problem = badMethodStart(bytes, from: start) { return .reject(problem) }
        let searchFrom = max(start, min(searchedUpTo, bytes.count) - (Self.endOfHead.count - 1))
        guard let end = Self.find(Self.endOfHead, in: bytes, from: searchFrom) else {
            if bytes.count > maxHeadBytes {
                return Self.find([.cr, .lf], in: bytes, from: start) == nil
                    ? .reject(.uriTooLong("request line longer than \(maxTargetBytes) bytes"))
                    : .reject(.headersTooLarge("request head longer than \(maxHeadBytes) bytes"))
            }
            if peerClosed { return .reject(Self.malformed("connection closed before the request head ended")) }
            return .incomplete
        }
        let head = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        return check(lines: Self.split(head))
    }

    // MARK: - Lines

    private func check(lines: [UnsafeRawBufferPointer]) -> Verdict {
        guard let requestLine = lines.first else { return .reject(Self.malformed("empty request head")) }
        let version: String
        switch parse(requestLine: requestLine) {
        case .reject(let problem): return .reject(problem)
        case .version(let parsed): version = parsed
        }
        if lines.count - 1 > Self.maxHeaderLines {
            return .reject(.headersTooLarge(
                "request has \(lines.count - 1) header lines, at most \(Self.maxHeaderLines) accepted"))
        }
        var headerBytes = 0
        var lengths: [String] = []
        var codings: [String] = []
        var hosts = 0
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: .colon) else {
                return .reject(Self.malformed("header line without a colon"))
            }
            guard colon > 0, line[..<colon].allSatisfy(Self.isTokenByte) else {
                return .reject(Self.malformed(
                    "header field name must be a token directly followed by ':' (no whitespace, RFC 9112 §5.1)"))
            }
            let rawValue = UnsafeRawBufferPointer(rebasing: line[(colon + 1)...])
            guard rawValue.allSatisfy(Self.isFieldValueByte) else {
                return .reject(Self.malformed("header field value holds a control character"))
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[..<colon]), as: UTF8.self).lowercased()
            let value = String(decoding: Self.trimmed(rawValue), as: UTF8.self)
            headerBytes += colon + value.utf8.count + 4
            switch name {
            case "content-length": lengths.append(value)
            case "transfer-encoding": codings.append(value)
            case "host": hosts += 1
            default: break
            }
        }
        if headerBytes > maxHeaderBytes {
            return .reject(.headersTooLarge(
                "request headers are \(headerBytes) bytes, at most \(maxHeaderBytes) accepted"))
        }
        if version == "HTTP/1.1", hosts != 1 {
            return .reject(Self.malformed("an HTTP/1.1 request needs exactly one Host header, got \(hosts)"))
        }
        return checkFraming(lengths: lengths, codings: codings, version: version)
    }

    /// RFC 9112 §6: one way to find the body's end, or the request is refused.
    private func checkFraming(lengths: [String], codings: [String], version: String) -> Verdict {
        if !codings.isEmpty {
            guard lengths.isEmpty else {
                return .reject(Self.malformed("both Content-Length and Transfer-Encoding (RFC 9112 §6.1)"))
            }
            guard version == "HTTP/1.1" else {
                return .reject(Self.malformed("Transfer-Encoding in an \(version) request (RFC 9112 §6.1)"))
            }
            guard codings.count == 1, codings[0].lowercased() == "chunked" else {
                let listed = codings.joined(separator: ", ")
                return .reject(.refusal(.notImplemented, "transfer coding '\(listed)' is not supported, only 'chunked'"))
            }
            return .accept
        }
        guard let length = lengths.first else { return .accept }
        guard lengths.count == 1 else { return .reject(Self.malformed("more than one Content-Length")) }
        guard !length.isEmpty, length.utf8.count <= 18, length.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let declared = Int(length)
        else { return .reject(Self.malformed("Content-Length must be decimal digits, got '\(length)'")) }
        if declared > maxBodyBytes {
            return .reject(Problem(APIError.tooLarge(
                "request body is \(declared) bytes, at most \(maxBodyBytes) bytes accepted")))
        }
        return .accept
    }

    private enum RequestLine {
        case version(String)
        case reject(Problem)
    }

    /// `method SP target SP HTTP/x.y`; returns the version.
    private func parse(requestLine line: UnsafeRawBufferPointer) -> RequestLine {
        let parts = line.split(separator: .space, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .reject(Self.malformed("request line must be 'METHOD target HTTP/1.1'"))
        }
        guard parts[1].count <= maxTargetBytes else {
            return .reject(.uriTooLong(
                "request target is \(parts[1].count) bytes, at most \(maxTargetBytes) accepted"))
        }
        guard parts[1].allSatisfy({ (0x21...0x7E).contains($0) }) else {
            return .reject(Self.malformed("request target holds a character that must be percent-encoded"))
        }
        let version = String(decoding: parts[2], as: UTF8.self)
        if version == "HTTP/1.1" || version == "HTTP/1.0" { return .version(version) }
        let digits = version.utf8.dropFirst(5)
        if version.hasPrefix("HTTP/"), digits.count == 3, digits.dropFirst().first == UInt8(ascii: "."),
           let major = digits.first, let minor = digits.last,
           (0x30...0x39).contains(major), (0x30...0x39).contains(minor) {
            return .reject(.refusal(.versionNotSupported, "\(version) is not supported; speak HTTP/1.1"))
        }
        return .reject(Self.malformed("request line must end in HTTP/1.1 or HTTP/1.0"))
    }

    /// Refuses at once a first line that cannot become a request line (a TLS
    /// hello, binary junk) instead of waiting for an end of head that never comes.
    private func badMethodStart(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Problem? {
        var index = start
        while index < bytes.count, index - start <= 32, Self.isTokenByte(bytes[index]) { index += 1 }
        guard index < bytes.count else { return nil }
        if index - start > 32 { return Self.malformed("request method longer than 32 bytes") }
        if index == start || bytes[index] != .space {
            return Self.malformed("not an HTTP/1.1 request (expected 'METHOD target HTTP/1.1')")
        }
        return nil
    }

    // MARK: - Bytes

    private static let endOfHead: [UInt8] = [.cr, .lf, .cr, .lf]

    private static func malformed(_ detail: String) -> Problem { Problem(APIError.malformed(detail)) }

    /// The index just past the first `needle` at or after `from`, or nil.
    private static func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard bytes.count - from >= needle.count else { return nil }
        var index = from
        while index + needle.count <= bytes.count {
            if bytes[index] == needle[0], needle.indices.allSatisfy({ bytes[index + $0] == needle[$0] }) {
                return index + needle.count
            }
            index += 1
        }
        return nil
    }

    /// The head's lines without their CRLF; a bare CR or LF makes its own
    /// line fail the checks above (neither is a token nor a value byte).
    private static func split(_ head: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
        var lines: [UnsafeRawBufferPointer] = []
        var lineStart = 0
        var index = 0
        while index + 1 < head.count {
            if head[index] == .cr, head[index + 1] == .lf {
                lines.append(UnsafeRawBufferPointer(rebasing: head[lineStart..<index]))
                index += 2
                lineStart = index
            } else {
                index += 1
            }
        }
        // The head ends in the first CRLF CRLF: its last line is the empty one.
        return Array(lines.dropLast())
    }

    private static func trimmed(_ value: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lower = 0
        var upper = value.count
        while lower < upper, value[lower] == .space || value[lower] == .tab { lower += 1 }
        while upper > lower, value[upper - 1] == .space || value[upper - 1] == .tab { upper -= 1 }
        return UnsafeRawBufferPointer(rebasing: value[lower..<upper])
    }

    /// RFC 9110 §5.6.2 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    /// RFC 9110 §5.5 field-value bytes (with the OWS around them).
    private static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == .tab || (0x20...0x7E).contains(byte) || byte >= 0x80
    }
}

extension UInt8 {
    fileprivate static let cr = UInt8(ascii: "\r")
    fileprivate static let lf = UInt8(ascii: "\n")
    fileprivate static let space = UInt8(ascii: " ")
    fileprivate static let tab = UInt8(ascii: "\t")
    fileprivate static let colon = UInt8(ascii: ":")
}
