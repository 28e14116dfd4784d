import ArgumentParser

/// `ctl remove`: drain a hop and take it out of its session.
struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Drain a hop and remove it; prints the offsets.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Session id (s1).")
    var session: String

    @Argument(help: "Hop id (h1).")
    var hop: String

    func run() throws {
        try global.perform { [session, hop] client in
            let output = try await client.removeHop(path: .init(id: session, hop: hop))
            guard case .ok(let ok) = output else { throw CtlFailure.unexpected("\(output)") }
            let removal = try ok.body.json
            return .object(removal, text: "\(removal.id) removed from \(session) at \(removal.removedAt.text) "
                               + "(drained \(removal.drained.text))")
        }
    }
}
