/// Whether the process that handed over is still running.
enum PredecessorProcess {
    /// How long a closed connection may precede the predecessor's exit becoming visible: a
    /// killed process closes its descriptors (the successor sees EOF) before its pidfd turns
    /// readable, and one found alive in that gap would be taken for one that resumed.
    static let exitGrace: Duration = .seconds(1)

    /// True unless `pid` is gone or exits within `exitGrace` (a zombie not yet reaped counts
    /// as exited: its descriptors are closed).
    static func isAlive(_ pid: Int32, grace: Duration = exitGrace) -> Bool {
        !WatchedProcess(pid: pid).hasExited(waitingUpTo: grace)
    }
}
