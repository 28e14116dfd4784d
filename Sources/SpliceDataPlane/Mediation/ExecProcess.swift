import Foundation
import SpliceCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A mediator process: its stdin and stdout as pipe descriptors, and a reaper thread that
/// collects its exit status so it never lingers as a zombie.
final class ExecProcess: Sendable {
    /// The child's process id.
    let pid: pid_t
    /// Our end of the child's stdout (we read it).
    let output: Int32
    /// Our end of the child's stdin (we write it).
    let input: Int32
    // Set by the reaper: a reaped pid may be reused, so it must not be signalled after.
    private let exited = Atomic<Bool>(false)

    private init(pid: pid_t, output: Int32, input: Int32) {
        self.pid = pid
        self.output = output
        self.input = input
    }

    /// Starts `argv` (no shell) with stdin and stdout piped to us; stderr is inherited so
    /// the operator sees what the filter says.
    static func spawn(_ argv: [String]) throws(APIError) -> ExecProcess {
        // Without pipe2 in Glibc's Swift overlay, the pipes are made close-on-exec by fcntl;
        // the lock keeps a concurrent spawn from inheriting them in between, which would hold
        // a pipe open and keep its reader from ever seeing EOF.
        try spawnLock.withLock { _ throws(APIError) in try spawnLocked(argv) }
    }

    private static let spawnLock = Mutex<Void>(())

    private static func makePipe() throws(APIError) -> [Int32] {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .badGateway("pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fds
    }

    private static func spawnLocked(_ argv: [String]) throws(APIError) -> ExecProcess {
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
        let rc = posix_spawnp(&pid, program, &actions, nil, cArgs, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1]); close(fromChild[0])
            throw .badGateway("cannot start exec mediator '\(program)': \(String(cString: strerror(rc)))")
        }
        let process = ExecProcess(pid: pid, output: fromChild[0], input: toChild[1])
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
            process.exited.store(true, ordering: .sequentiallyConsistent)
        }
        return process
    }

    /// How long a mediator may take to exit after SIGTERM before it gets SIGKILL.
    static let killGrace = 2.0

    /// Asks the process to stop, and kills it if it has not exited after `killGrace`
    /// seconds (a filter that ignores SIGTERM, or one stopped with SIGSTOP, would otherwise
    /// stay for ever); the reaper collects it.
    func terminate() {
        guard !exited.load(ordering: .sequentiallyConsistent) else { return }
        kill(pid, SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.killGrace) { [self] in
            guard !exited.load(ordering: .sequentiallyConsistent) else { return }
            kill(pid, SIGKILL)
        }
    }
}
