import ArgumentParser

/// `ctl unsplit`: detach a split recipient.
struct UnsplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unsplit", abstract: "Detach a split recipient.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Session id (s1).")
    var session: String

    @Argument(help: "Split id (x1).")
    var split: String

    func run() throws {
        try global.perform { [session, split] client in
            let output = try await client.deleteSplit(path: .init(id: session, split: split))
            guard case .noContent = output else { throw CtlFailure.unexpected("\(output)") }
            return .done("\(split) detached from \(session)")
        }
    }
}
