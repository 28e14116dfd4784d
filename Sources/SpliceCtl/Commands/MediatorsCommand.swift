import ArgumentParser

/// `ctl mediators list|add|remove`: the registry of mediators sessions splice by name.
struct MediatorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mediators", abstract: "List, register and unregister mediators.",
        subcommands: [List.self, Add.self, Remove.self])

    /// `mediators list`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every registered mediator.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try global.perform { client in
                let output = try await client.listMediators()
                guard case .ok(let ok) = output else { throw CtlFailure.unexpected("\(output)") }
                let list = try ok.body.json
                var table = Table("NAME", "KIND", "TARGET", "IN USE")
                for mediator in list.mediators {
                    switch mediator {
                    case .tcp(let tcp):
                        table.add(tcp.name, "tcp", tcp.address + (tcp.proxyProtocol ? " (proxy protocol)" : ""),
                                  "\(tcp.inUse)")
                    case .exec(let exec):
                        table.add(exec.name, "exec", exec.command.joined(separator: " "), "\(exec.inUse)")
                    }
                }
                return .object(list, text: table.text)
            }
        }
    }

    /// `mediators add`.
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a tcp mediator.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Its name.")
        var name: String

        @Argument(help: "Where it accepts, HOST:PORT.")
        var address: String

        @Flag(help: "Send a PROXY protocol v2 header first.")
        var proxyProtocol = false

        func run() throws {
            let body = Components.Schemas.MediatorCreate(
                name: name, address: address, proxyProtocol: proxyProtocol ? true : nil)
            try global.perform { client in
                let output = try await client.createMediator(body: .json(body))
                guard case .created(let created) = output else { throw CtlFailure.unexpected("\(output)") }
                let mediator = try created.body.json
                return .object(mediator, text: "mediator \(body.name) registered at \(body.address)")
            }
        }
    }

    /// `mediators remove`.
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unregister a mediator (refused while spliced).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Its name.")
        var name: String

        func run() throws {
            try global.perform { [name] client in
                let output = try await client.deleteMediator(path: .init(name: name))
                guard case .noContent = output else { throw CtlFailure.unexpected("\(output)") }
                return .done("mediator \(name) unregistered")
            }
        }
    }
}
