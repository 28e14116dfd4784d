import Foundation
import SpliceHandoff

extension Runtime {
    /// With `--handoff-socket`, SIGHUP (`systemctl reload`) starts a successor that takes
    /// the sessions over; the command is fixed now, as the process was started. Without it
    /// SIGHUP is refused in the log (its default action would end the process).
    func startReloader(notifier: ServiceNotifier) throws -> Reloader {
        guard let socket = settings.handoffSocket else {
            return Reloader(command: nil, notifier: notifier, logger: logger)
        }
        let environment = ProcessInfo.processInfo.environment
        guard let command = SuccessorCommand(argv: CommandLine.arguments,
                                             directory: FileManager.default.currentDirectoryPath,
                                             path: environment["PATH"], takingOver: socket) else {
            throw StartupError("--handoff-socket: cannot tell which executable a reload should start (\(CommandLine.arguments.first ?? "no program name") is in no directory of $PATH)")
        }
        return Reloader(command: command, notifier: notifier, logger: logger)
    }
}
