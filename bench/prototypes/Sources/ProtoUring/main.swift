// proto-uring: issue 12's io_uring prototype. Per loop: one ring, one SO_REUSEPORT
// listener with a multishot accept, and one ring of provided buffers the kernel picks
// from when a recv completes. Each direction has at most one recv armed or one send in
// flight: a recv armed on an idle socket holds no buffer (the kernel takes one only when
// bytes arrive), the buffer goes straight to a send to the peer and back to the ring when
// the send is done, and only then is the next recv armed (back-pressure). Half-close is
// passed on with a shutdown op; an error on either side closes both.
// Tunables (environment): PROTO_BUF_SIZE (32768), PROTO_BUF_COUNT (128, a power of two).
#if canImport(Glibc)
import Glibc
#endif
import CURing
import ProtoSupport

enum Op: UInt64 {
    case accept = 1, connect, recv, send, shutdown
}

/// One relayed connection pair. Index 0 is the client, 1 the server.
final class Session {
    var fds: (Int32, Int32)
    var connected = false
    /// Operations submitted and not completed: the session is freed only at zero.
    var inflight = 0
    var closing = false
    /// Per end i, the buffer being sent to it (from the other end's recv).
    var sendBuffer: (Int, Int) = (-1, -1)
    var sendOffset: (Int, Int) = (0, 0)
    var sendLength: (Int, Int) = (0, 0)
    /// Our output to end i has been shut after the other end's EOF.
    var shut: (Bool, Bool) = (false, false)
    var address = loopback(0)

    init(client: Int32, server: Int32) { fds = (client, server) }

    func fd(_ i: Int) -> Int32 { i == 0 ? fds.0 : fds.1 }
}

final class Loop {
    let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
    let listener: Int32
    let upstream: UInt16
    let bufSize: Int
    let bufCount: Int
    let buffers: UnsafeMutableRawPointer
    let bufRing: UnsafeMutablePointer<io_uring_buf_ring>
    var sessions: [Session?] = []
    var freeSlots: [Int] = []
    /// Recvs that found the buffer ring empty, armed again when a buffer comes back.
    var starved: [(Int, Int)] = []

    init(listenPort: UInt16, upstream: UInt16) {
        bufSize = Int(String(cString: getenv("PROTO_BUF_SIZE") ?? strdup("32768"))) ?? 32768
        bufCount = Int(String(cString: getenv("PROTO_BUF_COUNT") ?? strdup("128"))) ?? 128
        var params = io_uring_params()
        params.flags = UInt32(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN)
        if io_uring_queue_init_params(4096, ring, &params) != 0 {
            params = io_uring_params()
            guard io_uring_queue_init_params(4096, ring, &params) == 0 else { perror("io_uring_queue_init"); exit(1) }
        }
        listener = reusePortListener(listenPort)
        self.upstream = upstream
        buffers = UnsafeMutableRawPointer.allocate(byteCount: bufSize * bufCount, alignment: 4096)
        guard let br = proto_setup_buf_ring(ring, UInt32(bufCount), 0) else { perror("buf ring"); exit(1) }
        bufRing = br
        for bid in 0..<bufCount { giveBuffer(bid) }
        proto_prep_multishot_accept(sqe(), listener, Op.accept.rawValue)
    }

    private func giveBuffer(_ bid: Int) {
        proto_buf_ring_give(bufRing, buffers + bid * bufSize, UInt32(bufSize), UInt16(bid), UInt32(bufCount))
    }

    private func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        if let s = io_uring_get_sqe(ring) { return s }
        io_uring_submit(ring)
        return io_uring_get_sqe(ring)!
    }

    private func tag(_ slot: Int, _ end: Int, _ op: Op) -> UInt64 { UInt64(slot) << 8 | UInt64(end) << 4 | op.rawValue }

    func run() -> Never {
        let cqes = UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>.allocate(capacity: 512)
        while true {
            io_uring_submit_and_wait(ring, 1)
            let n = io_uring_peek_batch_cqe(ring, cqes, 512)
            for i in 0..<Int(n) {
                let cqe = cqes[i]!
                complete(io_uring_cqe_get_data64(cqe), cqe.pointee.res, cqe)
            }
            io_uring_cq_advance(ring, n)
        }
    }

    private func complete(_ data: UInt64, _ res: Int32, _ cqe: UnsafeMutablePointer<io_uring_cqe>) {
        guard let op = Op(rawValue: data & 0xf) else { return }
        if op == .accept {
            if res >= 0 { accepted(res) }
            if proto_cqe_has_more(cqe) == 0 { proto_prep_multishot_accept(sqe(), listener, Op.accept.rawValue) }
            return
        }
        let slot = Int(data >> 8), end = Int(data >> 4 & 0xf)
        guard let s = sessions[slot] else { return }
        s.inflight -= 1
        switch op {
        case .accept: break
        case .connect:
            if res < 0 { return abort(slot, s) }
            s.connected = true
            armRecv(slot, s, 0)
            armRecv(slot, s, 1)
        case .recv:
            if s.closing {
                if res > 0 { giveBuffer(Int(proto_cqe_buffer_id(cqe))) }
            } else if res > 0 {
                let bid = Int(proto_cqe_buffer_id(cqe))
                send(slot, s, to: 1 - end, bid: bid, offset: 0, length: Int(res))
            } else if res == 0 {
                s.inflight += 1
                proto_prep_shutdown(sqe(), s.fd(1 - end), Int32(SHUT_WR), tag(slot, 1 - end, .shutdown))
            } else if res == -ENOBUFS {
                starved.append((slot, end))
            } else {
                abort(slot, s)
            }
        case .send:
            let bid = end == 0 ? s.sendBuffer.0 : s.sendBuffer.1
            var offset = end == 0 ? s.sendOffset.0 : s.sendOffset.1
            let length = end == 0 ? s.sendLength.0 : s.sendLength.1
            if s.closing || res < 0 {
                releaseSendBuffer(s, end)
                if !s.closing { abort(slot, s) }
            } else {
                offset += Int(res)
                if offset < length {
                    send(slot, s, to: end, bid: bid, offset: offset, length: length)
                } else {
                    releaseSendBuffer(s, end)
                    armRecv(slot, s, 1 - end)
                }
            }
        case .shutdown:
            if end == 0 { s.shut.0 = true } else { s.shut.1 = true }
            if s.shut.0 && s.shut.1 && !s.closing { s.closing = true }
        }
        if s.closing && s.inflight == 0 { free(slot, s) }
    }

    private func accepted(_ client: Int32) {
        noDelay(client)
        let server = streamSocket()
        guard server >= 0 else { close(client); return }
        let s = Session(client: client, server: server)
        let slot = freeSlots.popLast() ?? { sessions.append(nil); return sessions.count - 1 }()
        sessions[slot] = s
        s.address = loopback(upstream)
        s.inflight += 1
        withUnsafePointer(to: &s.address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                proto_prep_connect(sqe(), server, $0, socklen_t(MemoryLayout<sockaddr_in>.size), tag(slot, 1, .connect))
            }
        }
    }

    private func armRecv(_ slot: Int, _ s: Session, _ end: Int) {
        guard !s.closing else { return }
        s.inflight += 1
        proto_prep_recv_select(sqe(), s.fd(end), UInt32(bufSize), 0, tag(slot, end, .recv))
    }

    private func send(_ slot: Int, _ s: Session, to end: Int, bid: Int, offset: Int, length: Int) {
        if end == 0 { s.sendBuffer.0 = bid; s.sendOffset.0 = offset; s.sendLength.0 = length }
        else { s.sendBuffer.1 = bid; s.sendOffset.1 = offset; s.sendLength.1 = length }
        s.inflight += 1
        proto_prep_send(sqe(), s.fd(end), buffers + bid * bufSize + offset, length - offset, tag(slot, end, .send))
    }

    private func releaseSendBuffer(_ s: Session, _ end: Int) {
        let bid = end == 0 ? s.sendBuffer.0 : s.sendBuffer.1
        guard bid >= 0 else { return }
        if end == 0 { s.sendBuffer.0 = -1 } else { s.sendBuffer.1 = -1 }
        giveBuffer(bid)
        while let (slot, e) = starved.popLast() {
            if let other = sessions[slot], !other.closing { armRecv(slot, other, e); break }
        }
    }

    /// Stops the session: shutting both sockets completes the recvs still armed.
    private func abort(_ slot: Int, _ s: Session) {
        s.closing = true
        shutdown(s.fds.0, Int32(SHUT_RDWR))
        shutdown(s.fds.1, Int32(SHUT_RDWR))
    }

    private func free(_ slot: Int, _ s: Session) {
        close(s.fds.0)
        close(s.fds.1)
        sessions[slot] = nil
        freeSlots.append(slot)
        starved.removeAll { $0.0 == slot }
    }
}

let arguments = RelayArguments()
runLoops(arguments.loops) { _ in
    Loop(listenPort: arguments.listenPort, upstream: arguments.upstreamPort).run()
}
