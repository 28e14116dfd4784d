internal import CSpliceLinux
#if canImport(Glibc)
import Glibc
#endif

/// The other process of a handoff, watched through a pidfd opened while it is known to run,
/// so that a number reused since never stands in for it.
final class WatchedProcess {
    /// Its process id.
    let pid: Int32
    /// -1 without pidfds (before Linux 5.3) or when the process was already gone.
    private let pidfd: Int32
    /// Set when the process was gone before the watch began.
    private let goneAtStart: Bool

    /// Starts watching `pid` (nonpositive: a process that is gone).
    init(pid: Int32) {
        self.pid = pid
        guard pid > 0 else {
            pidfd = -1
            goneAtStart = true
            return
        }
        pidfd = splice_pidfd_open(pid)
        goneAtStart = pidfd < 0 && errno == ESRCH
    }

    deinit {
        if pidfd >= 0 { close(pidfd) }
    }

    /// Whether the process has exited (a zombie not yet reaped counts: its descriptors are
    /// closed), waiting up to `wait` for it to.
    func hasExited(waitingUpTo wait: Duration = .zero) -> Bool {
        if goneAtStart { return true }
        let (seconds, attoseconds) = wait.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        guard pidfd >= 0 else { return probeWithoutPidfd(waitingUpTo: milliseconds) }
        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        while true {
            // Readable once the process has exited.
            let ready = poll(&entry, 1, milliseconds)
            if ready < 0, errno == EINTR { continue }
            return ready > 0
        }
    }

    /// The signal-0 probe, every 10 ms up to `milliseconds`.
    private func probeWithoutPidfd(waitingUpTo milliseconds: Int32) -> Bool {
        var left = milliseconds
        while kill(pid, 0) == 0 || errno == EPERM {
            guard left > 0 else { return false }
            usleep(10_000)
            left -= 10
        }
        return true
    }
}

@available(*, unavailable)
extension WatchedProcess: Sendable {}
