import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Errors the blocking test fixtures raise.
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A blocking TCP socket for tests: deliberately independent of SwiftNIO, so the relay is
/// checked by code that shares nothing with it.
public final class TestSocket: @unchecked Sendable {
    // @unchecked: the fd is only closed once (guarded by the lock); reads and writes from
    // different threads on one socket are what the kernel allows anyway.
    public let fd: Int32
    private let lock = NSLock()
    private var closed = false

    public init(fd: Int32) { self.fd = fd }

    deinit { close() }

    /// Connects to `host:port` (IPv4) with receive/send timeouts in seconds.
    public static func connect(port: Int, host: String = "127.0.0.1", timeout: Double = 30,
                               receiveBuffer: Int? = nil) throws -> TestSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(errno)") }
        let sock = TestSocket(fd: fd)
        if let receiveBuffer { sock.setOption(SO_RCVBUF, Int32(receiveBuffer)) }
        sock.setTimeout(timeout)
        var addr = sockaddr_in.loopback(host: host, port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw FixtureError("connect to \(host):\(port): errno \(errno)") }
        return sock
    }

    /// Sets an integer `SOL_SOCKET` option.
    public func setOption(_ name: Int32, _ value: Int32) {
        var value = value
        setsockopt(fd, SOL_SOCKET, name, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sets both receive and send timeouts.
    public func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Writes every byte or throws.
    public func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FixtureError("send: errno \(errno)")
                }
                offset += n
            }
        }
    }

    /// Reads up to `max` bytes; an empty answer means EOF.
    public func receive(max: Int = 65536) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, max, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FixtureError("recv: errno \(errno)")
            }
            return Array(buffer[0..<n])
        }
    }

    /// Reads exactly `count` bytes or throws at EOF.
    public func receive(exactly count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            let chunk = try receive(max: min(65536, count - out.count))
            if chunk.isEmpty { throw FixtureError("EOF after \(out.count) of \(count) bytes") }
            out += chunk
        }
        return out
    }

    /// Reads until EOF.
    public func receiveAll() throws -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let chunk = try receive()
            if chunk.isEmpty { return out }
            out += chunk
        }
    }

    /// Half-closes: the peer reads EOF, we can still read.
    public func shutdownWrite() {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes with a reset instead of a FIN (SO_LINGER 0).
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}

extension sockaddr_in {
    static func loopback(host: String, port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        return addr
    }
}
