#if canImport(Glibc)
import Glibc
#endif

/// What both prototypes take on the command line: `LISTEN_PORT UPSTREAM_PORT [LOOPS]`,
/// the same as minrelay, so bench/run starts all three alike.
public struct RelayArguments: Sendable {
    public let listenPort: UInt16
    public let upstreamPort: UInt16
    public let loops: Int

    public init() {
        let args = CommandLine.arguments
        guard args.count >= 3, let l = UInt16(args[1]), let u = UInt16(args[2]) else {
            let usage = "usage: \(args.first ?? "relay") LISTEN_PORT UPSTREAM_PORT [LOOPS]\n"
            _ = usage.withCString { write(2, $0, strlen($0)) }
            exit(2)
        }
        listenPort = l
        upstreamPort = u
        loops = args.count > 3 ? max(1, Int(args[3]) ?? 2) : 2
    }
}

/// 127.0.0.1:port as a sockaddr_in.
public func loopback(_ port: UInt16) -> sockaddr_in {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return a
}

/// A non-blocking listener on 127.0.0.1:port with SO_REUSEPORT, one per loop (as minrelay).
public func reusePortListener(_ port: UInt16) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var a = loopback(port)
    let bound = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 4096) == 0 else {
        perror("bind/listen")
        exit(1)
    }
    return fd
}

/// A non-blocking TCP socket with TCP_NODELAY, not yet connected.
public func streamSocket() -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd >= 0 { noDelay(fd) }
    return fd
}

/// Small messages must leave at once: a relay that waits for Nagle adds 40 ms to a PING.
public func noDelay(_ fd: Int32) {
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

/// Starts a non-blocking connect; true unless it failed at once.
public func startConnect(_ fd: Int32, _ port: UInt16) -> Bool {
    var a = loopback(port)
    let rc = withUnsafePointer(to: &a) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return rc == 0 || errno == EINPROGRESS
}

/// The pending error of a socket whose connect finished (0: connected).
public func socketError(_ fd: Int32) -> Int32 {
    var err: Int32 = 0
    var len = socklen_t(MemoryLayout<Int32>.size)
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
    return err
}

/// Runs `body` on `count` threads (the first on the calling thread) and never returns.
public func runLoops(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) -> Never {
    signal(SIGPIPE, SIG_IGN)
    for i in 1..<max(count, 1) {
        let box = Unmanaged.passRetained(LoopStart(index: i, body: body)).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            let start = Unmanaged<LoopStart>.fromOpaque(raw!).takeRetainedValue()
            start.body(start.index)
            return nil
        }, box)
    }
    body(0)
    exit(0)
}

private final class LoopStart: Sendable {
    let index: Int
    let body: @Sendable (Int) -> Void
    init(index: Int, body: @escaping @Sendable (Int) -> Void) { self.index = index; self.body = body }
}
