import ArgumentParser

/// `ctl sessions list|show|kill`.
struct SessionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "List, show and kill live sessions.",
        subcommands: [List.self, Show.self, Kill.self])

    /// `sessions list`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every live session (all pages).")

        @OptionGroup var global: GlobalOptions

        @Option(help: "Only sessions of this listener id.")
        var listener: String?

        @Option(help: "Sessions per request; the listing follows next_cursor to the end.")
        var limit: Int?

        func run() throws {
            try global.perform { [listener, limit] client in
                var sessions: [Components.Schemas.Session] = []
                var cursor: String?
                repeat {
                    let output = try await client.listSessions(query: .init(listener: listener, limit: limit, cursor: cursor))
                    guard case .ok(let ok) = output else { throw CtlFailure.unexpected("\(output)") }
                    let page = try ok.body.json
                    sessions += page.sessions
                    cursor = page.nextCursor
                } while cursor != nil
                return .object(LastPage(sessions: sessions), text: Components.Schemas.Session.table(sessions).text)
            }
        }
    }

    /// `sessions show`.
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One session with its hops and splits.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Session id (s1).")
        var session: String

        func run() throws {
            try global.perform { [session] client in
                let output = try await client.getSession(path: .init(id: session))
                guard case .ok(let ok) = output else { throw CtlFailure.unexpected("\(output)") }
                let value = try ok.body.json
                return .object(value, text: value.detail)
            }
        }
    }

    /// `sessions kill`.
    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close a session (client and server).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "Session id (s1).")
        var session: String

        func run() throws {
            try global.perform { [session] client in
                let output = try await client.deleteSession(path: .init(id: session))
                guard case .noContent = output else { throw CtlFailure.unexpected("\(output)") }
                return .done("session \(session) closed")
            }
        }
    }
}

/// Every page's sessions as one `SessionList` whose `next_cursor` is null, as the API's last
/// page writes it (the generated type leaves a nil cursor out).
private struct LastPage: Encodable, Sendable {
    let sessions: [Components.Schemas.Session]

    private enum CodingKeys: String, CodingKey {
        case sessions
        case nextCursor = "next_cursor"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sessions, forKey: .sessions)
        try container.encodeNil(forKey: .nextCursor)
    }
}
