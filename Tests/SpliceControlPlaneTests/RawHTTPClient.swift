import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SpliceControlPlane

/// A failure in the raw test client.
struct RawHTTPError: Error, CustomStringConvertible {
    let description: String
}

/// One parsed HTTP/1.1 response.
struct RawResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    /// The first value of header `name`, case-insensitively.
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The body parsed with the JSON type under test.
    func json() throws -> JSON { try JSON.parse(body) }

    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking HTTP/1.1 client over a raw socket, so a test controls every
/// byte it sends (20 KiB targets, chunked bodies, broken JSON). Every read
/// has a receive timeout, so a silent server fails the test instead of
/// hanging it.
final class RawHTTPClient {
    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to `host:port` (IPv4 or IPv6 literal).
    init(host: String = "127.0.0.1", port: Int, timeoutSeconds: Int = 5) throws {
        let isIPv6 = host.contains(":")
        fd = socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawHTTPError(description: "socket: errno \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result: Int32
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &address.sin6_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &address.sin_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        // No close here: a throwing init of a fully initialized class still
        // runs deinit, which closes the descriptor (closing twice could hit
        // a reused number owned by the server under test).
        guard result == 0 else { throw RawHTTPError(description: "connect \(host):\(port): errno \(errno)") }
    }

    deinit { close(fd) }

    /// Sends all of `bytes`; a reset after the server answered early is ignored.
    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EPIPE || errno == ECONNRESET { return }
                throw RawHTTPError(description: "send: errno \(errno)")
            }
            offset += sent
        }
    }

    /// Sends a request; `Content-Length` is added when there is a body.
    func send(
        _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = [],
        close: Bool = true
    ) throws {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: test\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty { head += "Content-Length: \(body.count)\r\n" }
        if close { head += "Connection: close\r\n" }
        head += "\r\n"
        try send(Array(head.utf8) + body)
    }

    /// Reads one response (Content-Length, chunked, or until close).
    func readResponse() throws -> RawResponse {
        var response = try readResponseHead()
        if let length = response.header("Content-Length").flatMap({ Int($0) }) {
            response.body = try readExactly(length)
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while let chunk = try readChunk() { response.body += chunk }
        } else if response.status != 204 && response.status != 304 {
            response.body = try readToEnd()
        }
        return response
    }

    /// Reads the status line and headers only.
    func readResponseHead() throws -> RawResponse {
        let head = try readUntil(Array("\r\n\r\n".utf8))
        let lines = String(decoding: head.dropLast(4), as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard lines[0].hasPrefix("HTTP/1."), statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw RawHTTPError(description: "not an HTTP response: \(lines[0])")
        }
        let headers = lines.dropFirst().map { line -> (String, String) in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]).trimmed : "")
        }
        return RawResponse(status: status, headers: headers, body: [])
    }

    /// Reads one chunk of a chunked body; nil at the last chunk.
    func readChunk() throws -> [UInt8]? {
        let sizeLine = try readUntil(Array("\r\n".utf8))
        let sizeText = String(decoding: sizeLine.dropLast(2), as: UTF8.self).split(separator: ";")[0]
        guard let size = Int(sizeText, radix: 16) else { throw RawHTTPError(description: "bad chunk size \(sizeText)") }
        if size == 0 {
            _ = try readUntil(Array("\r\n".utf8))
            return nil
        }
        let chunk = try readExactly(size)
        _ = try readExactly(2)
        return chunk
    }

    /// Whether the server closed the connection without sending anything more.
    func isClosedByPeer() -> Bool {
        (try? readToEnd())?.isEmpty == true
    }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &chunk, chunk.count, 0)
        if count < 0 {
            if errno == ECONNRESET { return false }
            throw RawHTTPError(description: "recv: errno \(errno) (timeout?)")
        }
        buffer += chunk.prefix(count)
        return count > 0
    }

    private func readUntil(_ marker: [UInt8]) throws -> [UInt8] {
        var searchFrom = 0
        while true {
            if buffer.count >= marker.count {
                for start in searchFrom...(buffer.count - marker.count)
                where buffer[start..<start + marker.count].elementsEqual(marker) {
                    let result = Array(buffer[..<(start + marker.count)])
                    buffer.removeFirst(start + marker.count)
                    return result
                }
                searchFrom = buffer.count - marker.count + 1
            }
            guard try fill() else { throw RawHTTPError(description: "connection closed before marker") }
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw RawHTTPError(description: "connection closed early") }
        }
        defer { buffer.removeFirst(count) }
        return Array(buffer.prefix(count))
    }

    private func readToEnd() throws -> [UInt8] {
        while try fill() {}
        defer { buffer = [] }
        return buffer
    }
}

extension String {
    var trimmed: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

/// One request on a fresh connection, `Connection: close`.
func rawRequest(
    port: Int, _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = []
) throws -> RawResponse {
    let client = try RawHTTPClient(port: port)
    try client.send(method, target, headers: headers, body: body)
    return try client.readResponse()
}
