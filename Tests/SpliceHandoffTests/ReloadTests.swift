import CSpliceLinux
import Foundation
import Logging
import SpliceHandoff
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a reload starts, and what the service manager hears (over a real datagram socket).
@Suite("Reload")
struct ReloadTests {
    @Test("the successor runs the start-up path with the same arguments, taking over from this socket")
    func successorCommand() throws {
        let socket = "/run/splicegate/handoff.sock"
        let absolute = try #require(SuccessorCommand(
            argv: ["/usr/local/bin/splicegate", "--config", "/etc/splicegate.json", "--handoff-socket", socket],
            directory: "/", path: nil, takingOver: socket))
        #expect(absolute.executable == "/usr/local/bin/splicegate")
        #expect(absolute.arguments == ["--config", "/etc/splicegate.json", "--handoff-socket", socket, "--take-over", socket])

        // A process that was itself a successor took over from another socket: that goes.
        let successor = try #require(SuccessorCommand(
            argv: ["../bin/splicegate", "--take-over", "/tmp/old.sock", "--admin", "127.0.0.1:0",
                   "--take-over=/tmp/older.sock", "--handoff-socket", socket],
            directory: "/srv/gw/run", path: nil, takingOver: socket))
        #expect(successor.executable == "/srv/gw/bin/splicegate")
        #expect(successor.arguments == ["--admin", "127.0.0.1:0", "--handoff-socket", socket, "--take-over", socket])

        // A bare name is looked up in $PATH as the shell did.
        let found = try #require(SuccessorCommand(
            argv: ["splicegate", "--handoff-socket", socket], directory: "/", path: "/usr/bin:/opt/gw/bin:/bin",
            takingOver: socket, isExecutable: { $0 == "/opt/gw/bin/splicegate" || $0 == "/bin/splicegate" }))
        #expect(found.executable == "/opt/gw/bin/splicegate")
        #expect(SuccessorCommand(argv: ["splicegate"], directory: "/", path: "/usr/bin", takingOver: socket,
                                 isExecutable: { _ in false }) == nil)
    }

    @Test("notifications reach a socket at a path and one with an abstract address")
    func notifications() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reload-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let logger = Logger(label: "test")
        for address in [directory.path + "/notify", "@splicegate-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"] {
            let receiver = try DatagramReceiver(address: address)
            defer { receiver.close() }
            let notifier = ServiceNotifier(environment: ["NOTIFY_SOCKET": address], logger: logger)
            notifier.ready(succeeding: nil)
            #expect(try receiver.receive() == "READY=1\nSTATUS=serving\n")
            notifier.ready(succeeding: 4242)
            #expect(try receiver.receive() == "MAINPID=\(getpid())\nREADY=1\nSTATUS=serving (took over from pid 4242)\n")
            notifier.reloading(status: "two\nlines")
            let reloading = try receiver.receive().split(separator: "\n")
            #expect(reloading.count == 3 && reloading[0] == "RELOADING=1" && reloading[2] == "STATUS=two lines")
            #expect(reloading[1].hasPrefix("MONOTONIC_USEC=") && UInt64(reloading[1].dropFirst(15)) != nil)
            notifier.mainProcess(77)
            #expect(try receiver.receive() == "MAINPID=77\n")
        }
        // No $NOTIFY_SOCKET: nothing to send to, nothing sent.
        #expect(ServiceNotifier(environment: [:], logger: logger).send(["READY=1"]) == false)
        #expect(ServiceNotifier(environment: ["NOTIFY_SOCKET": "vsock:2:1"], logger: logger).send(["READY=1"]) == false)
    }
}

/// A Unix datagram socket bound to `address` (a path, or `@name` for an abstract one),
/// as the service manager's notification socket is.
private struct DatagramReceiver {
    let fd: Int32

    init(address: String) throws {
        var target = sockaddr_un()
        // Fills in the family and the path (its stream socket is not the one we want).
        let probe = splice_unix_socket(address, &target)
        guard probe >= 0 else { throw POSIXError(.ENAMETOOLONG) }
        Glibc.close(probe)
        var length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + address.utf8.count + 1)
        if address.hasPrefix("@") {
            withUnsafeMutableBytes(of: &target.sun_path) { $0[0] = 0 }
            length -= 1
        }
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard fd >= 0, bound == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = splice_set_receive_timeout(fd, 10_000)
    }

    func receive() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0 else { throw POSIXError(.ETIMEDOUT) }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    func close() {
        Glibc.close(fd)
    }
}
