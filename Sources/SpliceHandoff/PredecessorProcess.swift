internal import CSpliceLinux
#if canImport(Glibc)
import Glibc
#endif

/// Whether the process that handed over is still running.
enum PredecessorProcess {
    /// True unless `pid` is gone or has exited (a zombie not yet reaped counts as exited: its
    /// descriptors are closed). A pidfd says so without a race on a reused number once open.
    static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        let pidfd = splice_pidfd_open(pid)
        guard pidfd >= 0 else {
            if errno == ESRCH { return false }
            // No pidfds (before Linux 5.3): the signal-0 probe.
            return kill(pid, 0) == 0 || errno == EPERM
        }
        defer { close(pidfd) }
        var poll = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        // Readable once the process has exited.
        return Glibc.poll(&poll, 1, 0) == 0
    }
}
