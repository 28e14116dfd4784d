import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP server on 127.0.0.1:0 that runs `handle` on a thread per connection.
///
/// It owns its sockets: `stop()` shuts the listener and every connection down (which wakes
/// threads blocked on them), joins the accept thread and the handler threads, and only then
/// closes the descriptors, so no thread of this server can touch a descriptor number that
/// the kernel has since handed to another test.
public final class TestServer: @unchecked Sendable {
    // @unchecked: mutable state (connection list, stopped flag) is guarded by `lock`.
    /// The port it listens on.
    public let port: Int
    private let listener: TestSocket
    private let lock = NSLock()
    private var connections: [TestSocket] = []
    private var stopped = false
    private var acceptedCount = 0
    /// Entered by the accept thread and by each handler thread; `stop()` waits for it.
    private let threads = DispatchGroup()

    /// Starts listening; `handle` runs for each accepted connection on its own thread.
    public init(_ handle: @escaping @Sendable (TestSocket) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(errno)") }
        let listener = TestSocket(fd: fd)
        listener.setOption(SO_REUSEADDR, 1)
        var addr = sockaddr_in.loopback(host: "127.0.0.1", port: 0)
        let bound = try listener.using { fd in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            } == 0 && listen(fd, 512) == 0
        }
        guard bound else { throw FixtureError("bind/listen: \(errno)") }
        self.listener = listener
        self.port = listener.localPort
        threads.enter()
        // Weak: a server the test forgot to stop still ends (in deinit) when dropped.
        Thread { [weak self, threads] in
            defer { threads.leave() }
            while let socket = listener.accept() {
                socket.setTimeout(60)
                guard self?.adopt(socket) == true else {
                    socket.close()
                    return
                }
                Thread {
                    defer { threads.leave() }
                    handle(socket)
                }.start()
            }
        }.start()
    }

    /// Registers an accepted connection and its handler thread, unless stopped.
    private func adopt(_ socket: TestSocket) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return false }
        connections.append(socket)
        acceptedCount += 1
        threads.enter()
        return true
    }

    /// How many connections were accepted so far.
    public var accepted: Int {
        lock.lock()
        defer { lock.unlock() }
        return acceptedCount
    }

    /// Stops accepting, wakes and joins every thread of this server, then closes its sockets.
    ///
    /// A handler blocked in something other than a socket call (a sleep, a lock) is waited
    /// for up to `timeout` seconds; its socket is still released only once the call using it
    /// returns (see `TestSocket`), never under it.
    public func stop(timeout: Double = 30) {
        lock.lock()
        let open = connections
        let wasStopped = stopped
        stopped = true
        connections = []
        lock.unlock()
        guard !wasStopped else { return }
        listener.shutdown()
        for socket in open { socket.shutdown() }
        _ = threads.wait(timeout: .now() + timeout)
        listener.close()
        for socket in open { socket.close() }
    }

    // No join here: the last reference may be dropped on this server's own accept thread.
    // Closing is still safe, since a socket is released only once no call is using it.
    deinit {
        listener.close()
        for socket in connections { socket.close() }
    }
}

extension TestServer {
    /// Echoes every byte back; on EOF half-closes and keeps the socket until the peer closes.
    public static func echo() throws -> TestServer {
        try transform { $0 }
    }

    /// A stream filter that flushes as it goes: answers each read with `transform` of it,
    /// and EOF with EOF. Used as the upstream or as a TCP mediator.
    public static func transform(_ transform: @escaping @Sendable ([UInt8]) -> [UInt8]) throws -> TestServer {
        try TestServer { socket in
            while let chunk = try? socket.receive(), !chunk.isEmpty {
                if (try? socket.send(transform(chunk))) == nil { break }
            }
            socket.shutdownWrite()
            _ = try? socket.receiveAll()
            socket.close()
        }
    }
}
