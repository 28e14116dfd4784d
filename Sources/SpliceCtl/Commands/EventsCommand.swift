import ArgumentParser
import Foundation

/// `ctl events`: the gateway's events (Server-Sent Events) as they happen.
struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the gateway's events as they happen.",
        discussion: """
            The gateway keeps no history: events from the moment of the request on. Without \
            --follow the command waits for --count events, prints them and exits.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Keep printing until interrupted or the gateway ends the stream.")
    var follow = false

    @Option(help: "Without --follow: how many events to wait for.")
    var count = 1

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let (follow, count, json) = (follow, count, global.json)
        try global.perform(transport: StreamingTransport()) { client in
            let output = try await client.streamEvents()
            guard case .ok(let ok) = output else { throw CtlFailure.unexpected("\(output)") }
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let events = try ok.body.textEventStream.asDecodedServerSentEventsWithJSONData(
                of: Components.Schemas.Event.self, decoder: decoder)
            var printed = 0
            for try await frame in events {
                guard let event = frame.data else { continue }
                let line = json ? String(decoding: try Output.encoder().encode(event), as: UTF8.self) : event.line
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
                printed += 1
                if !follow && printed >= count { break }
            }
            return .done("")
        }
    }
}
