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
///
/// It owns its descriptor's lifetime. `close()` from any thread is safe while another thread
/// is blocked in `receive` or `send` on it: the descriptor is shut down (which wakes that
/// thread) and released only when the last call using it has returned. Every call after
/// `close()` throws instead of touching a number the kernel may have handed to another
/// test's socket since.
public final class TestSocket: @unchecked Sendable {
    // @unchecked: `closed`, `inUse` and `released` are only touched under `lock`; the fd is
    // used only between `acquire()` and `release()`, so it cannot be closed under a call.
    private let fd: Int32
    private let lock = NSLock()
    private var closed = false
    private var inUse = 0
    private var released = false

    /// Takes ownership of a connected (or listening) descriptor.
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
        let rc = try sock.using { fd in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard rc == 0 else { throw FixtureError("connect to \(host):\(port): errno \(errno)") }
        return sock
    }

    /// Runs `body` with the descriptor, which stays open until `body` returns.
    public func using<T>(_ body: (Int32) throws -> T) throws -> T {
        lock.lock()
        guard !closed else {
            lock.unlock()
            throw FixtureError("socket already closed")
        }
        inUse += 1
        lock.unlock()
        defer { release() }
        return try body(fd)
    }

    private func release() {
        lock.lock()
        defer { lock.unlock() }
        inUse -= 1
        if closed, inUse == 0, !released {
            released = true
            Glibc.close(fd)
        }
    }

    /// The local port this socket is bound to (0 once closed).
    public var localPort: Int {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = try? using { fd in
            withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
        }
        return rc == 0 ? Int(UInt16(bigEndian: addr.sin_port)) : 0
    }

    /// Sets an integer `SOL_SOCKET` option.
    public func setOption(_ name: Int32, _ value: Int32) {
        var value = value
        _ = try? using { setsockopt($0, SOL_SOCKET, name, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// Sets both receive and send timeouts.
    public func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        _ = try? using { fd in
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Writes every byte or throws.
    public func send(_ bytes: [UInt8]) throws {
        try using { fd in
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
    }

    /// Reads up to `max` bytes; an empty answer means EOF.
    public func receive(max: Int = 65536) throws -> [UInt8] {
        try using { fd in
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

    /// Accepts one connection on a listening socket; nil once it is shut down or closed.
    public func accept() -> TestSocket? {
        while true {
            let client = (try? using { Glibc.accept($0, nil, nil) }) ?? -1
            if client >= 0 { return TestSocket(fd: client) }
            if errno == EINTR || errno == ECONNABORTED { continue }
            return nil
        }
    }

    /// Half-closes: the peer reads EOF, we can still read.
    public func shutdownWrite() {
        _ = try? using { Glibc.shutdown($0, Int32(SHUT_WR)) }
    }

    /// Shuts both directions down without releasing the descriptor: wakes a thread blocked
    /// on this socket (its call returns EOF or an error), so it can be joined before `close()`.
    public func shutdown() {
        _ = try? using { Glibc.shutdown($0, Int32(SHUT_RDWR)) }
    }

    /// Closes with a reset instead of a FIN (SO_LINGER 0).
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = try? using { setsockopt($0, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size)) }
        close()
    }

    /// Closes; safe from any thread and more than once. A call still blocked on the socket
    /// in another thread is woken by a shutdown, and the descriptor is released when it returns.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        if inUse == 0 {
            released = true
            Glibc.close(fd)
        } else {
            Glibc.shutdown(fd, Int32(SHUT_RDWR))
        }
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
