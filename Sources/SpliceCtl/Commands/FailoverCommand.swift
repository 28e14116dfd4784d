import ArgumentParser

/// `ctl failover`: make a replica split the session's server now.
struct FailoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover", abstract: "Make a replica split the session's server now.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Session id (s1).")
    var session: String

    @Argument(help: "The replica's split id (x1).")
    var split: String

    func run() throws {
        try global.perform { [session, split] client in
            let output = try await client.failover(path: .init(id: session), body: .json(.init(split: split)))
            guard case .ok(let ok) = output else { throw CtlFailure.unexpected("\(output)") }
            let value = try ok.body.json
            return .object(value, text: "\(session) failed over to \(value.server)")
        }
    }
}
