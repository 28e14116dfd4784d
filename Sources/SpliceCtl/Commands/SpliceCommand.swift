import ArgumentParser

/// `ctl splice`: splice a registered mediator, or one at an address, into a live session.
struct SpliceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "splice", abstract: "Splice a mediator into a live session.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Session id (s1).")
    var session: String

    @Argument(help: "A registered mediator's name (or give --address).")
    var mediator: String?

    @Option(help: "An ad-hoc tcp mediator HOST:PORT instead of a registered name.")
    var address: String?

    @Option(help: "client_to_server, server_to_client or both.")
    var direction: Components.Schemas.DirectionSelection = .both

    @Option(help: "Layer counted from the client side (0 = next to the client; default: next to the server).")
    var position: Int?

    @Option(help: "close_session or bypass.")
    var onFailure: Components.Schemas.FailurePolicy?

    @Option(help: "How long (ms) a removal may wait for the mediator's output.")
    var drainTimeoutMs: Int?

    func validate() throws {
        guard (mediator == nil) != (address == nil) else {
            throw ValidationError("give a registered MEDIATOR name or --address HOST:PORT, not both")
        }
    }

    func run() throws {
        let body: Components.Schemas.HopCreate
        if let address {
            body = .HopCreateByAddress(.init(address: address, direction: direction, position: position,
                                             onFailure: onFailure, drainTimeoutMs: drainTimeoutMs))
        } else {
            body = .HopCreateByName(.init(mediator: mediator ?? "", direction: direction, position: position,
                                          onFailure: onFailure, drainTimeoutMs: drainTimeoutMs))
        }
        try global.perform { [session] client in
            let output = try await client.spliceMediator(path: .init(id: session), body: .json(body))
            guard case .created(let created) = output else { throw CtlFailure.unexpected("\(output)") }
            let hop = try created.body.json
            return .object(hop, text: "\(hop.id) spliced into \(session) at \(hop.splicedAt.text)")
        }
    }
}
