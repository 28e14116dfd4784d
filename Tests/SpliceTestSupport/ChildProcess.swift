import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real server process for tests (redis-server, a python line server): started on a free
/// port, killed (SIGKILL) by `kill()` or when the test ends.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` is only started in init and signalled afterwards.
    private let process = Process()
    /// The port it listens on.
    public let port: Int

    /// Starts `executable` with `arguments(port)` on a free port and waits until it accepts.
    public init(_ executable: String, arguments: (Int) -> [String], timeout: Double = 10) throws {
        port = try freePort()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments(port)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        // Until it has exited, a listener on the port is this child's: the port was picked
        // where no port-0 bind of another test lands (see `freePort`).
        while Date() < deadline, process.isRunning {
            if let probe = try? TestSocket.connect(port: port, timeout: 1) {
                probe.close()
                return
            }
            usleep(20_000)
        }
        kill()
        throw FixtureError("\(executable) did not listen on \(port) within \(timeout) s")
    }

    /// SIGKILL: the process dies without closing anything itself.
    public func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { kill() }
}

/// A TCP port nothing listens on right now, for a child process to listen on.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`, 32768 and up by
/// default), from which every port-0 bind is served: a server another test binds to port 0
/// meanwhile cannot be given this port before the child takes it.
public func freePort() throws -> Int {
    for _ in 0..<1000 {
        let port = Int.random(in: 20000..<32000)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in.loopback(host: "127.0.0.1", port: port)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound == 0 { return port }
    }
    throw FixtureError("no free port in 20000..<32000")
}

/// Whether `path` names an executable (to skip tests whose tool is not installed).
public func executableExists(_ path: String) -> Bool {
    FileManager.default.isExecutableFile(atPath: path)
}

/// A port that refuses connections for as long as this value lives: bound, never listening.
///
/// Closing a listener to get a "dead" port would hand the number back to the kernel, and a
/// test running at the same time may then be given it and listen there.
public final class RefusingPort: @unchecked Sendable {
    // @unchecked: the descriptor is only closed once, in deinit.
    private let fd: Int32
    /// The reserved port.
    public let port: Int

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(errno)") }
        var addr = sockaddr_in.loopback(host: "127.0.0.1", port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { close(fd); throw FixtureError("bind: \(errno)") }
        var out = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &out) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: out.sin_port))
    }

    deinit { close(fd) }
}
