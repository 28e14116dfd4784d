import Foundation

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
        while Date() < deadline {
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

/// A TCP port nothing listens on right now (bound, read back, released).
public func freePort() throws -> Int {
    let probe = try TestServer { _ in }
    let port = probe.port
    probe.stop()
    return port
}

/// Whether `path` names an executable (to skip tests whose tool is not installed).
public func executableExists(_ path: String) -> Bool {
    FileManager.default.isExecutableFile(atPath: path)
}
