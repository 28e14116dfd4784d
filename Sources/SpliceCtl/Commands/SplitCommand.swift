import ArgumentParser

/// `ctl split`: copy a live session's stream to a recipient.
struct SplitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split", abstract: "Copy one or both directions of a live session to HOST:PORT.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Session id (s1).")
    var session: String

    @Argument(help: "The recipient HOST:PORT.")
    var address: String

    @Option(help: "client_to_server, server_to_client or both.")
    var direction: Components.Schemas.DirectionSelection = .both

    @Option(help: "drop (detach a recipient that falls behind) or block (pace the session to it).")
    var onSlow: Components.Schemas.SlowPolicy?

    @Option(help: "How far (bytes) a drop recipient may fall behind.")
    var bufferBytes: Int?

    @Flag(help: "A replica that takes over when the server fails (client_to_server, --on-slow block).")
    var failover = false

    func run() throws {
        let body = Components.Schemas.SplitCreate(
            address: address, direction: direction, onSlow: onSlow, bufferBytes: bufferBytes,
            failover: failover ? true : nil)
        try global.perform { [session] client in
            let output = try await client.addSplit(path: .init(id: session), body: .json(body))
            guard case .created(let created) = output else { throw CtlFailure.unexpected("\(output)") }
            let split = try created.body.json
            return .object(split, text: "\(split.id) copies \(session) to \(split.address) from \(split.fromOffset.text)")
        }
    }
}
