import NIOCore
import SpliceCore
import SpliceIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A mediator process: its stdin and stdout as pipe descriptors, and its watch on the
/// session's loop, which reaps it when it exits and signals it only until then.
final class ExecProcess: Sendable {
    /// The child's process id.
    let pid: pid_t
    /// Our end of the child's stdout (we read it).
    let output: Int32
    /// Our end of the child's stdin (we write it).
    let input: Int32
    /// Reaps it when it exits; touched only on the session's loop.
    private let child: RelayChild

    private init(pid: pid_t, output: Int32, input: Int32, child: RelayChild) {
        self.pid = pid
        self.output = output
        self.input = input
        self.child = child
    }

    /// Starts `argv` (no shell) with stdin and stdout piped to us, watched on `loop` (the
    /// caller's); stderr is inherited so the operator sees what the filter says.
    static func spawn(_ argv: [String], on loop: RelayLoop) throws(APIError) -> ExecProcess {
        // Without pipe2 in Glibc's Swift overlay, the pipes are made close-on-exec by fcntl;
        // the lock keeps a concurrent spawn from inheriting them in between, which would hold
        // a pipe open and keep its reader from ever seeing EOF.
        let (pid, output, input) = try spawnLock.withLock { _ throws(APIError) in try spawnLocked(argv) }
        guard let child = RelayChild(pid: pid, loop: loop) else {
            // Neither a pidfd nor a thread to reap it with: do not leave it running.
            kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            close(output)
            close(input)
            throw .badGateway("cannot watch exec mediator '\(argv[0])': out of descriptors or threads")
        }
        return ExecProcess(pid: pid, output: output, input: input, child: child)
    }

    /// Takes over a process a predecessor process started (a handoff): its pipes travel as
    /// the leg's socket, its pidfd tells when it exits. Nil (the pidfd closed) if the loop
    /// cannot watch it.
    static func adopt(pid: pid_t, output: Int32, input: Int32, pidfd: Int32, on loop: RelayLoop) -> ExecProcess? {
        guard let child = RelayChild(adopting: pid, pidfd: pidfd, loop: loop) else { return nil }
        return ExecProcess(pid: pid, output: output, input: input, child: child)
    }

    /// The pidfd to pass to a successor process, nil if there is none to pass.
    var handoffDescriptor: Int32? { child.handoffDescriptor }

    /// Stops watching while a handoff is under way (the pidfd stays open: it may travel).
    func suspendForHandoff() {
        child.suspendForHandoff()
    }

    /// Watches again: the handoff failed.
    func resumeAfterHandoff() {
        child.resumeAfterHandoff()
    }

    /// A successor watches the process now: stop watching it here, signalling nothing.
    func relinquish() {
        child.relinquish()
    }

    private static let spawnLock = Mutex<Void>(())

    private static func makePipe() throws(APIError) -> [Int32] {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .badGateway("pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fds
    }

    private static func spawnLocked(_ argv: [String]) throws(APIError) -> (pid: pid_t, output: Int32, input: Int32) {
        guard let program = argv.first else { throw .invalid("exec mediator has an empty command") }
        let toChild = try makePipe()
        let fromChild: [Int32]
        do {
            fromChild = try makePipe()
        } catch {
            close(toChild[0]); close(toChild[1])
            throw error
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        // A filter starts as a process of its own would: SIGPIPE and the gateway's caught
        // signals at their default actions, nothing blocked (as Python's subprocess does).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGPIPE, SIGTERM, SIGINT] { sigaddset(&defaults, number) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let rc = posix_spawnp(&pid, program, &actions, &attributes, cArgs, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw .badGateway("cannot start exec mediator '\(program)': \(String(cString: strerror(rc)))")
        }
        return (pid, fromChild[0], toChild[1])
    }

    /// How long a mediator may take to exit after SIGTERM before it gets SIGKILL.
    static let killGrace = TimeAmount.seconds(2)

    /// Asks the process to stop, and kills it if it has not exited after `killGrace` (a
    /// filter that ignores SIGTERM, or one stopped with SIGSTOP, would otherwise stay for
    /// ever); its watch reaps it. Call on the session's loop.
    func terminate() {
        child.terminate(grace: Self.killGrace)
    }
}
