import ArgumentParser

/// `splicegate ctl`: operate a running gateway through its admin API.
public struct CtlCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Operate a running gateway through its admin API.",
        discussion: """
            The admin URL comes from --admin-url or SPLICEGATE_ADMIN_URL (default \
            \(GlobalOptions.defaultAdminURL)); the token from --token-file or \
            SPLICEGATE_ADMIN_TOKEN. Exit codes: 0 done, 1 the API answered a problem (its \
            detail on stderr), 2 usage, 3 gateway unreachable.
            """,
        subcommands: [
            SessionsCommand.self, SpliceCommand.self, RemoveCommand.self, SplitCommand.self,
            UnsplitCommand.self, FailoverCommand.self, ListenersCommand.self, MediatorsCommand.self,
            EventsCommand.self, CaptureCommand.self,
        ])

    public init() {}

    public func run() throws {
        throw CtlFailure.usage("missing command; see 'splicegate ctl --help'")
    }
}
