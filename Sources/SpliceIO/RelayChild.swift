internal import CSpliceLinux
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// A child process watched on a relay loop: reaped as soon as it exits, so it never
/// lingers as a zombie, and signalled only while it has not been reaped, so a signal
/// cannot reach another process that reused its pid.
///
/// The watch is the child's pidfd in the loop's epoll set: no thread per child (exec
/// mediators come and go with sessions, and a blocked `waitpid` thread each cost a
/// thread per live mediator). Where pidfds are not available (a kernel before 5.3, or
/// no descriptor left), a thread waits without reaping and hands the exit to the loop,
/// which reaps: the pid stays reserved until the loop knows.
///
/// Touched only on its loop, except the fallback thread, which only queues a task.
public final class RelayChild: RelayPollable, @unchecked Sendable {
    public let pid: Int32
    private let loop: RelayLoop
    private var pidfd: Int32 = -1
    private var token: PollToken?
    /// Reaped: its pid may belong to someone else now.
    public private(set) var exited = false

    /// Starts watching `pid`, a child of this process; call on `loop`. Nil if it cannot be
    /// watched at all (no pidfd and no thread): the caller must not leave it running.
    public init?(pid: Int32, loop: RelayLoop) {
        self.pid = pid
        self.loop = loop
        let fd = splice_pidfd_open(pid)
        if fd >= 0, let token = loop.register(fd, events: splice_epoll_in, target: self) {
            // A child that exited before the registration has a readable pidfd already,
            // which the next wait reports: nothing is missed.
            self.pidfd = fd
            self.token = token
        } else {
            if fd >= 0 { Glibc.close(fd) }
            guard watchOnThread() else { return nil }
        }
    }

    /// Watches a process this one did not start, handed on by a predecessor process with
    /// its pidfd (a handoff): it cannot be reaped from here (its parent's parent reaps it
    /// once the predecessor has exited), so the pidfd only tells when it has exited and
    /// carries signals while it has not. Nil (the pidfd closed) if the loop cannot take it.
    public init?(adopting pid: Int32, pidfd fd: Int32, loop: RelayLoop) {
        self.pid = pid
        self.loop = loop
        adopted = true
        guard let token = loop.register(fd, events: splice_epoll_in, target: self) else {
            Glibc.close(fd)
            return nil
        }
        pidfd = fd
        self.token = token
    }

    /// Whether the process was handed on by a predecessor (not a child of this process).
    private var adopted = false

    /// The pidfd to pass to a successor process, nil if the child is watched by a thread
    /// (no pidfd) or has exited.
    public var handoffDescriptor: Int32? { exited || pidfd < 0 ? nil : pidfd }

    /// Stops watching while a handoff is under way, the pidfd kept open: an exit meanwhile
    /// is not reaped here (which would close the pidfd, its number free for another
    /// descriptor while the handoff may still pass it on), but seen once watched again
    /// (`resumeAfterHandoff`) or by the successor. Call on the loop.
    public func suspendForHandoff() {
        guard let token else { return }
        loop.deregister(token, fd: pidfd)
        self.token = nil
    }

    /// Watches again after `suspendForHandoff` (the handoff failed): a pidfd readable
    /// meanwhile is reported by the next wait. False if the loop cannot take it back (the
    /// child is then signalled and reaped by the thread fallback).
    public func resumeAfterHandoff() {
        guard token == nil, pidfd >= 0, !exited else { return }
        if let token = loop.register(pidfd, events: splice_epoll_in, target: self) {
            self.token = token
            return
        }
        // No room in the epoll set: watch it the other way rather than never reap it.
        Glibc.close(pidfd)
        pidfd = -1
        if !adopted, !watchOnThread() { kill(pid, SIGKILL) }
    }

    /// Stops watching without signalling or reaping: a successor process watches the child
    /// now (its pidfd went with the handoff).
    public func relinquish() {
        if let token { loop.deregister(token) }
        token = nil
        if pidfd >= 0 { Glibc.close(pidfd) }
        pidfd = -1
        exited = true
    }

    /// Sends `signal` unless the child has been reaped.
    public func signal(_ signal: Int32) {
        guard !exited else { return }
        if pidfd >= 0 {
            _ = splice_pidfd_send_signal(pidfd, signal)
        } else {
            kill(pid, signal)
        }
    }

    /// SIGTERM now, SIGKILL after `grace` if it has not exited by then (a filter that
    /// ignores SIGTERM, or one stopped with SIGSTOP, would otherwise stay for ever).
    public func terminate(grace: TimeAmount) {
        guard !exited else { return }
        signal(SIGTERM)
        _ = loop.timers.add(.now() + grace) { [self] in
            signal(SIGKILL)
        }
    }

    func ready(_ events: UInt32, slot: Int) {
        // A readable pidfd: the child has exited and is a zombie until reaped here, so its
        // pid still names it.
        guard !adopted else { return reaped() }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        guard rc != 0 else { return }
        reaped()
    }

    func loopStopped() {
        // The gateway is going away, and with its loop any SIGKILL a `terminate` had
        // scheduled: a filter that ignores SIGTERM would outlive it (reparented to init).
        // It goes now; init reaps it. A child handed to a successor was relinquished and is
        // no longer registered here.
        signal(SIGKILL)
        token = nil
        if pidfd >= 0 { Glibc.close(pidfd) }
        pidfd = -1
        exited = true
    }

    private func reaped() {
        exited = true
        if let token { loop.deregister(token) }
        token = nil
        if pidfd >= 0 { Glibc.close(pidfd) }
        pidfd = -1
    }

    private func watchOnThread() -> Bool {
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = splice_detached_thread({ raw in
            let child = Unmanaged<RelayChild>.fromOpaque(raw!).takeRetainedValue()
            var info = siginfo_t()
            // WNOWAIT: the child stays a zombie, its pid reserved, until the loop reaps it.
            while waitid(P_PID, id_t(child.pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
            child.loop.execute {
                var status: Int32 = 0
                _ = waitpid(child.pid, &status, WNOHANG)
                child.reaped()
            }
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<RelayChild>.fromOpaque(context).release()
            return false
        }
        return true
    }
}
