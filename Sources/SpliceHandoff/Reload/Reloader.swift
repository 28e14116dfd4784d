internal import CSpliceLinux
import Dispatch
import Foundation
import Logging
import Synchronization

/// `systemctl reload` (SIGHUP) for a gateway with `--handoff-socket`: starts its own
/// successor, `SuccessorCommand` in a process of its own (it outlives this one), which
/// takes every session over as any `--take-over` process does. The service manager hears
/// `RELOADING=1`, then `MAINPID=` of the successor and `READY=1` from it; if the successor
/// fails, this process serves on, says why, and ends the reload with `READY=1` itself.
public final class Reloader: Sendable {
    private enum State {
        /// Until the gateway serves with its handoff socket listening: no successor could
        /// take over.
        case starting
        /// Serving; no successor under way.
        case serving
        /// A successor was started and has neither exited nor taken over yet.
        case underWay(pid_t)
        /// Everything is handed off; this process is on its way out.
        case handedOff
        /// Told to stop (SIGTERM): it drains and exits; a successor still starting is left to
        /// fail on its own, and nothing tells the service manager "ready" again.
        case stopping
    }

    private let state = Mutex<State>(.starting)
    /// What a reload starts; nil without `--handoff-socket` (SIGHUP is then refused in the
    /// log: the sessions have nowhere to go, and its default action would cut them all).
    private let command: SuccessorCommand?
    private let notifier: ServiceNotifier
    private let logger: Logger
    // Kept so the source stays installed for the process's life.
    private let source: SignalSource

    /// Catches SIGHUP from now on (one arriving during start-up is logged and ignored,
    /// instead of ending the process as its default action would); `serving()` arms it.
    public init(command: SuccessorCommand?, notifier: ServiceNotifier, logger: Logger) {
        self.command = command
        self.notifier = notifier
        self.logger = logger
        source = SignalSource(SIGHUP)
        source.start { [self] in self.hangUp() }
    }

    /// The gateway serves: a SIGHUP from now on starts a successor.
    public func serving() {
        state.withLock { state in
            if case .starting = state { state = .serving }
        }
    }

    /// A successor has taken everything over (called before this process lets go of
    /// anything else): if it is the one this process started, the service manager hears
    /// that it is the main process now, before this one exits. (A successor started by
    /// hand announces itself; under systemd, `systemctl reload` is the way.)
    public func handedOff() {
        let successor: pid_t? = state.withLock { state in
            defer { state = .handedOff }
            if case .underWay(let pid) = state { return pid }
            return nil
        }
        // Not if it has died meanwhile (then another process took over, started by hand).
        if let successor, PredecessorProcess.isAlive(successor, grace: .zero) { notifier.mainProcess(successor) }
    }

    /// The gateway stops (drains, then exits): no reload from now on, and the service
    /// manager hears `STOPPING=1`.
    public func stopping() {
        state.withLock { state in
            if case .handedOff = state { return }
            state = .stopping
        }
        notifier.stopping(status: "stopping: draining sessions")
    }

    private func hangUp() {
        guard let command else {
            logger.warning("SIGHUP ignored: a reload hands the sessions to a new process, which needs --handoff-socket; serving on")
            return
        }
        state.withLock { state in
            switch state {
            case .starting:
                logger.warning("SIGHUP ignored: no successor can take over yet (the gateway is starting, or its handoff socket is not listening)")
            case .underWay(let pid):
                logger.warning("SIGHUP ignored: a reload is under way", metadata: ["successor_pid": "\(pid)"])
            case .handedOff:
                logger.notice("SIGHUP ignored: this process has handed everything off and is exiting")
            case .stopping:
                logger.notice("SIGHUP ignored: the gateway is stopping")
            case .serving:
                notifier.reloading(status: "reloading: starting a successor to hand the sessions to")
                do throws(HandoffError) {
                    let pid = try spawn(command)
                    state = .underWay(pid)
                    logger.notice("SIGHUP: started a successor to hand the sessions to", metadata: [
                        "successor_pid": "\(pid)", "executable": "\(command.executable)",
                        "arguments": "\(command.arguments.joined(separator: " "))",
                    ])
                    watch(pid)
                } catch {
                    logger.error("reload failed: cannot start a successor; serving on", metadata: [
                        "executable": "\(command.executable)", "reason": "\(error)",
                    ])
                    notifier.reloadFailed(status: "serving; reload failed: cannot start \(command.executable): \(error)")
                }
            }
        }
    }

    /// Waits for the successor on a thread of its own: if it exits before taking over, the
    /// reload has failed (its own log says why; the handoff, if it got that far, was undone).
    private func watch(_ pid: pid_t) {
        let thread = Thread { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let failed: Bool = state.withLock { state in
                guard case .underWay(let current) = state, current == pid else { return false }
                state = .serving
                return true
            }
            guard failed else { return }
            let how = Self.describe(status)
            logger.error("reload failed: the successor exited without taking over; serving on", metadata: [
                "successor_pid": "\(pid)", "successor_exit": "\(how)",
            ])
            notifier.reloadFailed(status: "serving; reload failed: the successor \(how) without taking over")
        }
        thread.name = "reload"
        thread.start()
    }

    private static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
    }

    /// Starts the successor: this process's stdin, stdout and stderr and environment, no
    /// other descriptor (closed in the child, close-on-exec or not: a session's socket
    /// held there would keep the connection open after its session closes), every signal
    /// at its default action and none blocked, as a process started afresh.
    private func spawn(_ command: SuccessorCommand) throws(HandoffError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        var noSignal = sigset_t()
        sigemptyset(&noSignal)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        posix_spawnattr_setsigmask(&attributes, &noSignal)
        // A session of its own: a hangup or Ctrl-C meant for this process's terminal or group
        // is not the successor's (it would end it before its handlers exist).
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) | splice_posix_spawn_setsid())
        let argv = ([command.executable] + command.arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, command.executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw .system("posix_spawn \(command.executable)", rc) }
        return pid
    }
}

/// A dispatch signal source whose signal is ignored otherwise (so that it does not end the
/// process before the source is registered).
private final class SignalSource: @unchecked Sendable {
    // @unchecked: set up once in `start`, then only kept alive.
    private let number: Int32
    private var source: (any DispatchSourceSignal)?

    init(_ number: Int32) {
        self.number = number
    }

    /// Installs the source; returns once it is registered (until then a signal would be
    /// lost), or after 5 s at most.
    func start(_ handler: @escaping @Sendable () -> Void) {
        signal(number, SIG_IGN)
        let registered = DispatchSemaphore(value: 0)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { handler() }
        source.setRegistrationHandler { registered.signal() }
        source.resume()
        _ = registered.wait(timeout: .now() + .seconds(5))
        self.source = source
    }
}
