import ArgumentParser

/// `ctl listeners list|add|remove`.
struct ListenersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listeners", abstract: "List, add and remove listeners.",
        subcommands: [List.self, Add.self, Remove.self])

    /// `listeners list`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every listener.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try global.perform { client in
                let output = try await client.listListeners()
                guard case .ok(let ok) = output else { throw CtlFailure.unexpected("\(output)") }
                let list = try ok.body.json
                var table = Table("ID", "NAME", "LISTEN", "UPSTREAM", "ACTIVE", "TOTAL", "TEMPLATES")
                for listener in list.listeners {
                    table.add(listener.id, listener.name ?? "-", listener.listen, listener.upstream,
                              "\(listener.sessions.active)", "\(listener.sessions.total)",
                              "\(listener.mediators.count) hops, \(listener.splits.count) splits")
                }
                return .object(list, text: table.text)
            }
        }
    }

    /// `listeners add`.
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept on LISTEN and relay to UPSTREAM.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "HOST:PORT to accept on (port 0: any free port).")
        var listen: String

        @Argument(help: "The server HOST:PORT.")
        var upstream: String

        @Option(help: "A label.")
        var name: String?

        @Option(help: "How long (ms) dialing the upstream may take.")
        var connectTimeoutMs: Int?

        @Option(help: "Most live sessions of this listener.")
        var maxSessions: Int?

        @Option(help: "Close a session idle this long (ms).")
        var idleTimeoutMs: Int?

        func run() throws {
            let body = Components.Schemas.ListenerCreate(
                name: name, listen: listen, upstream: upstream, connectTimeoutMs: connectTimeoutMs,
                maxSessions: maxSessions, idleTimeoutMs: idleTimeoutMs)
            try global.perform { client in
                let output = try await client.createListener(body: .json(body))
                guard case .created(let created) = output else { throw CtlFailure.unexpected("\(output)") }
                let listener = try created.body.json
                return .object(listener, text: "\(listener.id) accepting on \(listener.listen) for \(listener.upstream)")
            }
        }
    }

    /// `listeners remove`.
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop accepting on a listener.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Listener id (l1).")
        var listener: String

        @Flag(help: "Also close its live sessions.")
        var closeSessions = false

        func run() throws {
            try global.perform { [listener, closeSessions] client in
                let output = try await client.deleteListener(
                    path: .init(id: listener), query: .init(closeSessions: closeSessions ? true : nil))
                guard case .noContent = output else { throw CtlFailure.unexpected("\(output)") }
                return .done("listener \(listener) removed")
            }
        }
    }
}
