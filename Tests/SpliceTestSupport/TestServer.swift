import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP server on 127.0.0.1:0 that runs `handle` on a thread per connection.
public final class TestServer: @unchecked Sendable {
    // @unchecked: mutable state (connection list, stopped flag) is guarded by `lock`.
    public let port: Int
    private let listenFD: Int32
    private let lock = NSLock()
    private var connections: [TestSocket] = []
    private var stopped = false
    private var acceptedCount = 0
    private let acceptThread: Thread

    /// Starts listening; `handle` runs for each accepted connection on its own thread.
    public init(_ handle: @escaping @Sendable (TestSocket) -> Void) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket: \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in.loopback(host: "127.0.0.1", port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 512) == 0 else { throw FixtureError("bind/listen: \(errno)") }
        var out = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &out) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.listenFD = fd
        self.port = Int(UInt16(bigEndian: out.sin_port))
        let box = AcceptLoop(fd: fd, handle: handle)
        self.acceptThread = Thread { box.run() }
        box.server = self
        acceptThread.start()
    }

    fileprivate func adopt(_ socket: TestSocket) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return false }
        connections.append(socket)
        acceptedCount += 1
        return true
    }

    /// How many connections were accepted so far.
    public var accepted: Int {
        lock.lock()
        defer { lock.unlock() }
        return acceptedCount
    }

    /// Stops accepting and closes every connection.
    public func stop() {
        lock.lock()
        let open = connections
        let wasStopped = stopped
        stopped = true
        connections = []
        lock.unlock()
        guard !wasStopped else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
        for socket in open { socket.close() }
    }

    deinit { stop() }
}

private final class AcceptLoop: @unchecked Sendable {
    // @unchecked: `server` is set once before the thread starts.
    let fd: Int32
    let handle: @Sendable (TestSocket) -> Void
    weak var server: TestServer?

    init(fd: Int32, handle: @escaping @Sendable (TestSocket) -> Void) {
        self.fd = fd
        self.handle = handle
    }

    func run() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let socket = TestSocket(fd: client)
            socket.setTimeout(60)
            guard let server, server.adopt(socket) else {
                socket.close()
                return
            }
            let handle = self.handle
            Thread { handle(socket) }.start()
        }
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
