import CMicroHTTPD
#if canImport(Glibc)
import Glibc
#endif

extension AdminAcceptor {
    /// How long an answered connection may take to send its EOF.
    static let lingerTime: Duration = .seconds(2)
    /// The most bytes discarded after an answer before closing anyway.
    static let lingerBytes = 1 << 20

    /// Something happened on a pending connection.
    func service(_ fd: Int32, events: UInt32) {
        if events & SG_EPOLL_PEER_CLOSED != 0 { pending.update(fd, peerClosed: true) }
        guard let connection = pending[fd] else { return }
        if connection.answered {
            drain(fd)
            return
        }
        let count = sg_peek(fd, buffer.baseAddress, buffer.count)
        if count < 0 {
            let error = sg_errno()
            if error != EAGAIN, error != EWOULDBLOCK, error != EINTR { drop(fd) }
            return
        }
        // Nothing at all and the peer is gone: a port probe, not a request.
        if count == 0 {
            drop(fd)
            return
        }
        // Nothing new since the last look (a spurious wake): no rescan.
        if count == connection.scanned, !connection.peerClosed { return }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
        switch screen.verdict(bytes, peerClosed: connection.peerClosed, searchedUpTo: connection.scanned) {
        case .incomplete: pending.update(fd, scanned: count)
        case .accept:
            if MHDPoolNeed.fits(bytes, pool: pools.compact), !streamsResponse(Self.path(of: bytes)) {
                release(fd, compact: true)
            } else if MHDPoolNeed.fits(bytes, pool: pools.large) {
                release(fd, compact: false)
            } else {
                answer(fd, .headersTooLarge(
                    "request head has more header fields, query arguments and cookies than the server has room for"))
            }
        case .reject(let problem): answer(fd, problem)
        }
    }

    /// The path of the request line that starts `bytes` (a head the screen accepted), without
    /// its query.
    static func path(of bytes: UnsafeRawBufferPointer) -> Substring {
        let line = bytes.drop { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }
            .prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }
        let target = line.drop { $0 != UInt8(ascii: " ") }.dropFirst().prefix { $0 != UInt8(ascii: " ") }
        return Substring(decoding: target.prefix { $0 != UInt8(ascii: "?") }, as: UTF8.self)
    }

    /// How long, at a handoff, a connection still sending its request head has to finish it.
    /// Long enough for a head already on its way (a client sends it right after
    /// connecting), short against the sessions, which are frozen while this process waits.
    static let handoffGrace: Duration = .milliseconds(200)

    /// A handoff began: the successor accepts on the same listening socket from now on, and
    /// this process waits for the connections it took before the sessions move on. It must
    /// not wait on a client: answered connections are not lingered on (their answer has been
    /// sent), and those still sending their request head get `handoffGrace`
    /// (`endHandoffGraceIfDue`).
    func beginHandoffGrace(now: ContinuousClock.Instant) {
        while let fd = pending.oldestAnswered() { drop(fd) }
        handoffGraceUntil = now + Self.handoffGrace
    }

    /// Ends the grace once no head is arriving any more, or at its end: a connection still
    /// sending its head is closed (its client connects again and reaches the successor).
    /// A connection handed to MHD is not: its head is whole, so it is being handled (MHD
    /// may not have read it yet), and its body, if any, has the drain's cap.
    func endHandoffGraceIfDue(now: ContinuousClock.Instant) {
        guard let until = handoffGraceUntil else { return }
        guard until <= now || pending.readingCount == 0 else { return }
        handoffGraceUntil = nil
        var closed = 0
        for fd in Array(pending.descriptors) {
            if pending[fd]?.answered == false { closed += 1 }
            drop(fd)
        }
        if closed > 0 {
            logger.notice("""
                handoff: closed \(closed) admin connection(s) whose request had not arrived; \
                their clients reach the successor when they connect again
                """)
        }
    }

    /// Makes room by closing the oldest connection not yet handed to MHD
    /// (answered ones first); false if there is none.
    func evictOldest(reason: String) -> Bool {
        if let answered = pending.oldestAnswered() {
            drop(answered)
        } else if let reading = pending.oldestReading() {
            refuse(reading, .refusal(.overloaded, "request head not complete while \(reason); closed to make room"))
        } else {
            return false
        }
        return true
    }

    /// Sends `problem` and closes at once (no linger: for a client that
    /// took too long or must make room).
    func refuse(_ fd: Int32, _ problem: Problem) {
        send(problem, to: fd)
        if pending[fd] != nil { drop(fd) } else { close(fd) }
    }

    /// Sends `problem`, then discards what the client still sends until its
    /// EOF (or `lingerTime`), so closing does not reset the connection and
    /// destroy the answer before the client reads it.
    func answer(_ fd: Int32, _ problem: Problem) {
        send(problem, to: fd)
        shutdown(fd, Int32(SHUT_WR))
        guard pending[fd] != nil else { return }
        let now = ContinuousClock.now
        pending.markAnswered(fd, now: now, deadline: now + Self.lingerTime)
        // Lingering answers are bounded too: the oldest gives way.
        if pending.answeredCount > limit, let oldest = pending.oldestAnswered(excluding: fd) { drop(oldest) }
        logger.debug("admin request head refused", metadata: ["status": "\(problem.status)", "detail": "\(problem.detail)"])
        drain(fd)
    }

    private func drain(_ fd: Int32) {
        var drained = pending[fd]?.drained ?? 0
        while true {
            let count = sg_discard(fd, buffer.baseAddress, buffer.count)
            if count > 0 {
                drained += count
                if drained > Self.lingerBytes { break }
                continue
            }
            let error = sg_errno()
            if count < 0, error == EAGAIN || error == EWOULDBLOCK {
                pending.update(fd, drained: drained)
                return
            }
            if count < 0, error == EINTR { continue }
            break
        }
        drop(fd)
    }

    private func send(_ problem: Problem, to fd: Int32) {
        let body = problem.json.serializedBytes()
        var head = "HTTP/1.1 \(problem.status) \(Self.reason(problem.status))\r\n"
        head += "Content-Type: application/problem+json\r\nContent-Length: \(body.count)\r\n"
        if problem.status == 503 { head += "Retry-After: 1\r\n" }
        head += "Connection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        // A few hundred bytes into an empty send buffer: one write does it;
        // a client that does not read loses its answer, not our time.
        _ = bytes.withUnsafeBytes { sg_send(fd, $0.baseAddress, $0.count) }
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 431: "Request Header Fields Too Large"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Error"
        }
    }
}
