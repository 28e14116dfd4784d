// proto-epoll: issue 12's epoll prototype. Per loop: one epoll set, one SO_REUSEPORT
// listener, one 64 KiB scratch buffer. Sockets are registered once, edge-triggered, for
// input, output and peer half-close, so relaying needs no epoll_ctl after the two ADDs of a
// session. A read goes into the scratch buffer and straight out to the peer; only what
// the peer cannot take is copied into a pool chunk, and reading that direction stops
// until the chunk is written out (back-pressure). Half-close is passed on; an error or
// reset on either side closes both.
#if canImport(Glibc)
import Glibc
#endif
import CLinux
import ProtoSupport

/// One socket of a session.
final class End {
    let fd: Int32
    /// fd plus a per-loop serial in the epoll data, so an event for a socket closed
    /// earlier in the same batch is not applied to a new one with the same number.
    var tag: UInt64 = 0
    unowned(unsafe) var peer: End!
    /// The kernel said there is input (or EOF) we have not read yet.
    var readable = false
    /// The kernel reported the peer's FIN: a short read does not mean nothing is left,
    /// since no new edge comes for an EOF that was already queued behind the bytes.
    var eofQueued = false
    /// Connected (the client from the start, the server once its connect completes).
    var connected: Bool
    /// The peer sent EOF; after `pending` drains, our output to `peer` is shut.
    var inputEnded = false
    /// Our output is shut (we passed on the peer's EOF).
    var outputShut = false
    /// Bytes read from `peer` that this socket could not take yet.
    var pending: UnsafeMutableRawPointer?
    var pendingStart = 0
    var pendingEnd = 0

    init(fd: Int32, connected: Bool) {
        self.fd = fd
        self.connected = connected
    }
}

final class Loop {
    let epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
    let listener: Int32
    let upstream: UInt16
    let scratchSize = 65536
    let scratch: UnsafeMutableRawPointer
    var pool: BufferPool
    /// Ends by descriptor: the epoll data is the fd; this keeps the objects alive.
    var ends: [End?] = Array(repeating: nil, count: 1024)
    var serial: UInt64 = 0
    static let listenerTag: UInt64 = UInt64.max
    static let sessionEvents = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue

    init(listenPort: UInt16, upstream: UInt16) {
        listener = reusePortListener(listenPort)
        self.upstream = upstream
        scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchSize, alignment: 16)
        pool = BufferPool(chunkSize: scratchSize)
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue | EPOLLET.rawValue
        ev.data.u64 = Loop.listenerTag
        epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev)
    }

    func run() -> Never {
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: 512)
        while true {
            let n = epoll_wait(epfd, events, 512, -1)
            if n < 0 { continue }
            for i in 0..<Int(n) {
                let ev = events[i]
                if ev.data.u64 == Loop.listenerTag {
                    acceptAll()
                } else if let end = ends[Int(ev.data.u64 & 0xffff_ffff)], end.tag == ev.data.u64 {
                    handle(end, ev.events)
                }
            }
        }
    }

    private func register(_ end: End) {
        let fd = Int(end.fd)
        if fd >= ends.count { ends += Array(repeating: nil, count: max(fd + 1 - ends.count, ends.count)) }
        ends[fd] = end
        serial += 1
        end.tag = serial << 32 | UInt64(fd)
        var ev = epoll_event()
        ev.events = Loop.sessionEvents
        ev.data.u64 = end.tag
        epoll_ctl(epfd, EPOLL_CTL_ADD, end.fd, &ev)
    }

    private func acceptAll() {
        while true {
            let c = proto_accept_nonblocking(listener)
            if c < 0 { return }
            noDelay(c)
            let s = streamSocket()
            guard s >= 0, startConnect(s, upstream) else {
                close(c)
                if s >= 0 { close(s) }
                continue
            }
            let client = End(fd: c, connected: true)
            let server = End(fd: s, connected: false)
            client.peer = server
            server.peer = client
            register(client)
            register(server)
        }
    }

    private func handle(_ end: End, _ events: UInt32) {
        if !end.connected {
            guard events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 else { return }
            guard socketError(end.fd) == 0 else { return closeSession(end) }
            end.connected = true
            if end.peer.readable { guard pump(from: end.peer) else { return } }
        }
        if events & EPOLLOUT.rawValue != 0, end.pending != nil {
            guard flushPending(end) else { return }
        }
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
            end.readable = true
            if events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { end.eofQueued = true }
            _ = pump(from: end)
        }
    }

    /// Moves bytes from `src` to its peer until `src` has none, the peer is full, or EOF.
    /// False when the session was closed.
    private func pump(from src: End) -> Bool {
        let dst = src.peer!
        while src.readable, dst.connected, dst.pending == nil, !dst.inputEnded {
            let n = read(src.fd, scratch, scratchSize)
            if n > 0 {
                if n < scratchSize, !src.eofQueued { src.readable = false }
                let w = send(dst.fd, scratch, n, Int32(MSG_NOSIGNAL))
                if w == n { continue }
                if w < 0, errno != EAGAIN { closeSession(src); return false }
                let sent = max(w, 0)
                let chunk = pool.take()
                chunk.copyMemory(from: scratch + sent, byteCount: n - sent)
                dst.pending = chunk
                dst.pendingStart = 0
                dst.pendingEnd = n - sent
                return true
            } else if n == 0 {
                src.readable = false
                dst.inputEnded = true
                return shutIfDrained(dst)
            } else if errno == EAGAIN {
                src.readable = false
            } else if errno != EINTR {
                closeSession(src)
                return false
            }
        }
        return true
    }

    /// Writes what `end` was left with; when it is all out, gives the chunk back and
    /// resumes reading the other side. False when the session was closed.
    private func flushPending(_ end: End) -> Bool {
        guard let chunk = end.pending else { return true }
        let w = send(end.fd, chunk + end.pendingStart, end.pendingEnd - end.pendingStart, Int32(MSG_NOSIGNAL))
        if w < 0 {
            if errno == EAGAIN { return true }
            closeSession(end)
            return false
        }
        end.pendingStart += w
        guard end.pendingStart == end.pendingEnd else { return true }
        pool.give(chunk)
        end.pending = nil
        if end.inputEnded { return shutIfDrained(end) }
        return pump(from: end.peer)
    }

    /// Passes EOF on to `end` once nothing is pending for it; closes the session when both
    /// directions have ended. False when the session was closed.
    private func shutIfDrained(_ end: End) -> Bool {
        guard end.pending == nil, !end.outputShut else { return true }
        shutdown(end.fd, Int32(SHUT_WR))
        end.outputShut = true
        if end.peer.outputShut {
            closeSession(end)
            return false
        }
        return true
    }

    private func closeSession(_ end: End) {
        for e in [end, end.peer!] {
            if let chunk = e.pending { pool.give(chunk) }
            e.pending = nil
            ends[Int(e.fd)] = nil
            close(e.fd)
        }
    }
}

let arguments = RelayArguments()
runLoops(arguments.loops) { _ in
    Loop(listenPort: arguments.listenPort, upstream: arguments.upstreamPort).run()
}
