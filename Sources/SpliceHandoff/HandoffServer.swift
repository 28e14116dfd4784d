internal import CSpliceLinux
import Foundation
import Logging
import SpliceControlPlane
import SpliceDataPlane
import Synchronization

/// The running gateway's side of a handoff (`--handoff-socket PATH`): waits for a
/// successor on a Unix socket (mode 0600, removed on exit) and hands it everything, one
/// successor at a time, on a thread of its own (see `HandoffProtocol`).
public final class HandoffServer: Sendable {
    /// How long a successor has to say hello.
    static let helloTimeoutMilliseconds = 10_000
    /// How long a successor has to take the frames of `released` (after the ack).
    static let releaseTimeout: Duration = .seconds(5)
    /// How long admin answers in flight are waited for before the freeze, and after it.
    static let adminSettleWait: Duration = .seconds(5)
    static let adminSettleWaitFrozen: Duration = .seconds(1)
    /// The default of `timeout`.
    public static let defaultTimeout: Duration = .seconds(30)

    /// The socket's path.
    public let path: String
    private let listenFD: Int32
    private let gateway: Gateway
    private let admin: HTTPServer
    /// The SHA-256 of the admin token (nil: none), so that a successor can tell it must
    /// require the same (see `AdminTokenCheck`).
    private let adminTokenDigest: String?
    private let logger: Logger
    private let handedOff: @Sendable () -> Void
    /// From the hello to the ack, the whole exchange: past it, whatever the successor does
    /// (stopped, taking bytes slowly, trickling its answer), everything resumes.
    private let timeout: Duration
    /// Set once the path is gone (removed after a handoff, or at stop): removing it again
    /// could remove a successor's socket bound at the same path since.
    private let pathRemoved = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    /// Set once a successor has acknowledged.
    private let succeeded = Atomic<Bool>(false)
    /// Signalled when the handoff thread has ended.
    private let finished = DispatchSemaphore(value: 0)

    /// Binds `path` and starts waiting for a successor; `handedOff` runs (on the handoff
    /// thread) once a successor has acknowledged, and the process should then exit 0.
    /// `adminToken` is the token the admin API requires (nil: none).
    public init(path: String, gateway: Gateway, admin: HTTPServer, adminToken: String?, logger: Logger,
                timeout: Duration = defaultTimeout,
                handedOff: @escaping @Sendable () -> Void) throws(HandoffError) {
        // A socket file left by a process that is gone (connection refused) would make bind
        // fail and is removed; one that a live gateway serves, or that this user may not
        // even connect to, is left alone (bind then fails, saying so).
        let probe = splice_unix_connect(path)
        if probe >= 0 {
            close(probe)
            throw HandoffError("\(path): another gateway is listening there")
        }
        var status = stat()
        if errno == ECONNREFUSED, lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        let fd = splice_unix_listen(path, 4)
        guard fd >= 0 else { throw .system("listen on \(path)") }
        self.path = path
        self.listenFD = fd
        self.gateway = gateway
        self.admin = admin
        self.adminTokenDigest = AdminTokenCheck.digest(adminToken)
        self.logger = logger
        self.handedOff = handedOff
        self.timeout = timeout
        let thread = Thread { [self] in self.run() }
        thread.name = "handoff"
        thread.start()
        logger.info("waiting for a successor on the handoff socket", metadata: ["path": "\(path)"])
    }

    /// Stops waiting for successors and removes the socket file (unless a handoff already
    /// did). A handoff under way is finished first, so that a shutdown never closes sessions
    /// a successor is taking: returns whether one has taken everything (then the process
    /// must exit without touching the sessions).
    @discardableResult
    public func stop() -> Bool {
        if !stopping.exchange(true, ordering: .relaxed) {
            // Wakes the blocked accept (close alone would not); closed here once the thread
            // has ended, so that its number is never someone else's while the thread uses it.
            shutdown(listenFD, Int32(SHUT_RDWR))
            finished.wait()
            close(listenFD)
            removePath()
        }
        return succeeded.load(ordering: .relaxed)
    }

    private func removePath() {
        guard !pathRemoved.exchange(true, ordering: .relaxed) else { return }
        unlink(path)
    }

    private func run() {
        defer { finished.signal() }
        while !stopping.load(ordering: .relaxed) {
            let fd = splice_unix_accept(listenFD)
            if fd < 0 {
                let error = errno
                if error == EINTR || error == ECONNABORTED { continue }
                if stopping.load(ordering: .relaxed) { return }
                // Out of descriptors (EMFILE, ENFILE) or memory, or worse: said, then tried
                // again after a pause, rather than no successor ever being accepted again.
                logger.error("handoff socket: accept failed; trying again in 1 s", metadata: [
                    "path": "\(path)", "reason": "\(String(cString: strerror(error)))",
                ])
                sleep(1)
                continue
            }
            if serve(HandoffChannel(fd: fd)) {
                succeeded.store(true, ordering: .relaxed)
                handedOff()
                return
            }
        }
    }

    /// Runs one handoff; true once the successor has acknowledged everything.
    private func serve(_ channel: HandoffChannel) -> Bool {
        defer { channel.close() }
        if let problem = channel.peerProblem() {
            // Nothing is said to it: a stranger learns nothing.
            logger.warning("handoff: refused a connection on the handoff socket", metadata: ["reason": "\(problem)"])
            return false
        }
        // Watched from the connection on, so that its number, reused later, never stands in
        // for it.
        let watched = channel.peerPID.map { WatchedProcess(pid: $0) }
        channel.deadline = .now + .milliseconds(Self.helloTimeoutMilliseconds)
        let successor: Int32
        do throws(HandoffError) {
            guard case .hello(let version, let pid) = try channel.receiveMessage() else {
                refuse(channel, "the first message must be hello", successor: nil)
                return false
            }
            successor = pid
            // One deadline for everything from here to the ack (the freeze included).
            channel.deadline = .now + timeout
            guard version == HandoffProtocol.version else {
                refuse(channel, "handoff protocol version \(version) is not supported; this gateway speaks version \(HandoffProtocol.version)",
                       successor: pid)
                return false
            }
        } catch {
            logger.warning("handoff: no valid hello from the successor", metadata: ["reason": "\(error)"])
            return false
        }
        // The data plane's reason first: a removal in flight also holds its DELETE's answer,
        // and what to wait for is the removal. An answer on its way is waited for; a stream
        // (events, a capture) does not hold the handoff up: it is ended once the successor
        // has acknowledged, and its client reconnects to the successor.
        if let reason = gateway.handoffBlocker() ?? adminBlocker(waitingUpTo: Self.adminSettleWait) {
            refuse(channel, reason, successor: successor)
            return false
        }
        let export: HandoffExport
        do {
            export = try gateway.freezeForHandoff()
        } catch {
            refuse(channel, error.reason, successor: successor)
            return false
        }
        // An answer that was on its way (a kill whose session closed just before the freeze, a listener
        // or mediator change the gateway waited for) is waited for, briefly: the sessions are
        // frozen meanwhile, and changes asked for from now on get 409.
        if let reason = adminBlocker(waitingUpTo: Self.adminSettleWaitFrozen) {
            refuse(channel, reason, successor: successor)
            channel.close()
            gateway.resumeAfterHandoff()
            return false
        }
        logger.notice("handoff: handing over", metadata: [
            "successor_pid": "\(successor)", "sessions": "\(export.sessions.count)",
            "listeners": "\(export.listeners.count)",
        ])
        do throws(HandoffError) {
            try send(export, over: channel)
            switch try channel.receiveMessage() {
            case .ack(let sessions, let listeners):
                guard sessions == export.sessions.count, listeners == export.listeners.count else {
                    throw HandoffError("the successor acknowledged \(sessions) sessions and \(listeners) listeners of \(export.sessions.count) and \(export.listeners.count)")
                }
            case .abort(let reason):
                throw HandoffError("the successor aborted: \(reason)")
            default:
                throw HandoffError("the successor answered something other than ack")
            }
        } catch {
            // Closed before anything resumes: a successor still on its way sees the connection
            // end without `released` and never touches the sockets (see `HandoffProtocol`).
            channel.close()
            gateway.resumeAfterHandoff()
            logger.error("handoff failed before the successor acknowledged; serving every session on", metadata: [
                "successor_pid": "\(successor)", "reason": "\(error)", "sessions": "\(export.sessions.count)",
            ])
            return false
        }
        logger.info("handoff: the successor acknowledged; finishing admin requests", metadata: [
            "successor_pid": "\(successor)",
        ])
        // The captures' files end first, each with its statistics blocks (the drain would
        // end their streams where they stand).
        gateway.endCapturesAfterHandoff()
        // The successor serves the admin socket only after `released`: finish what this
        // process accepted, so that no admin request is cut (answered from the state just
        // handed over), and end the event streams, whose clients reconnect to the successor.
        admin.stopAcceptingAndDrain(timeout: .seconds(5))
        // The last moment to change course: a successor that died (or gave up) since its ack
        // never touched anything (it waits for `released`), and nobody but this process
        // holds the sessions.
        if let gone = successorGone(channel, watched) {
            channel.close()
            gateway.resumeAfterHandoff()
            logger.error("handoff: the successor went away after acknowledging; serving every session on", metadata: [
                "successor_pid": "\(successor)", "reason": "\(gone)", "sessions": "\(export.sessions.count)",
            ])
            do {
                try admin.startAccepting()
            } catch {
                // The sessions serve on; only the admin API is missing.
                logger.error("handoff: cannot accept admin connections again", metadata: ["reason": "\(error)"])
            }
            return false
        }
        // Before `released`: the successor binds its own socket (maybe at this path) after it.
        removePath()
        // From here to `released` is the one window left: a successor that dies in it (after
        // the check above) takes the sessions with it, since this process's copies are closed
        // (before `released`: a pipe left open here would keep an exec mediator's input
        // open). It lasts as long as closing the descriptors on the event loops, and
        // `released` is the very next step.
        gateway.relinquishAfterHandoff()
        channel.deadline = .now + Self.releaseTimeout
        do throws(HandoffError) {
            try channel.send(HandoffMessage.released.frame)
        } catch {
            // Everything is let go of: a successor that cannot hear it finds this process gone.
            logger.warning("handoff: could not tell the successor everything is released", metadata: [
                "successor_pid": "\(successor)", "reason": "\(error)",
            ])
        }
        logger.notice("handoff: the successor acknowledged; exiting", metadata: [
            "successor_pid": "\(successor)", "sessions": "\(export.sessions.count)",
        ])
        return true
    }

    /// Why the successor is no longer there to take everything, or nil if it still is: the
    /// connection closed or shut down on its side, or its process (known by the kernel's
    /// word, not its hello's) exited.
    private func successorGone(_ channel: HandoffChannel, _ watched: WatchedProcess?) -> String? {
        if channel.peerHungUp { return "it closed the handoff connection" }
        if let watched, watched.hasExited() { return "its process \(watched.pid) exited" }
        return nil
    }

    private func send(_ export: HandoffExport, over channel: HandoffChannel) throws(HandoffError) {
        try channel.send(HandoffMessage.admin(fd: admin.listenDescriptor, tokenDigest: adminTokenDigest).frame)
        for spec in export.mediators { try channel.send(HandoffMessage.mediator(spec).frame) }
        for listener in export.listeners { try channel.send(HandoffMessage.listener(listener).frame) }
        for session in export.sessions { try channel.send(HandoffMessage.session(session).frame) }
        try channel.send(HandoffMessage.end(export.counters, sessions: export.sessions.count,
                                            listeners: export.listeners.count, pid: getpid()).frame)
    }

    /// Admin answers in flight do not move: one waiting on the data plane (a kill, a
    /// splice) is waited for, up to `wait`, and refuses the handoff if it has not come by
    /// then. Streams (events, captures) are not counted: they end after the ack.
    private func adminBlocker(waitingUpTo wait: Duration) -> String? {
        let deadline = ContinuousClock.now + wait
        var waiting = admin.parkedAnswers
        while waiting > 0, ContinuousClock.now < deadline {
            usleep(2_000)
            waiting = admin.parkedAnswers
        }
        guard waiting > 0 else { return nil }
        return "\(waiting) admin answer(s) in flight (waiting on the data plane); try again once they are answered"
    }

    private func refuse(_ channel: HandoffChannel, _ reason: String, successor: Int32?) {
        logger.warning("handoff refused; serving on", metadata: [
            "reason": "\(reason)", "successor_pid": "\(successor.map { "\($0)" } ?? "unknown")",
        ])
        try? channel.send(HandoffMessage.refused(reason: reason).frame)
    }
}
