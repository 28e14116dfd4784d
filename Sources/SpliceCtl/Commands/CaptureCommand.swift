import ArgumentParser
import Glibc
import OpenAPIRuntime

/// `ctl capture`: a session's or a listener's live capture, as the pcapng bytes arrive.
struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Write a live capture (pcapng) of a session or of a listener's sessions.",
        discussion: """
            Records from the moment of the request until the session (or the listener) ends, \
            then exits 0; Ctrl-C, or the reader of stdout going away, ends it early and \
            cleanly. Bytes are written as they arrive: 'splicegate ctl capture s3 | wireshark \
            -k -i -' watches live. The output is the pcapng stream itself, so --json (and \
            tables) do not apply; stdout is refused when it is a terminal.
            """)

    /// How long the capture stream may go without a byte: an idle session sends nothing,
    /// and that is no reason to stop recording it.
    static let idleTimeout: Double = 7 * 24 * 3600

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Session id (s1); or give --listener.")
    var session: String?

    @Option(help: "Capture every session of this listener id (open now or opening later).")
    var listener: String?

    @Option(help: "edges (the client and server legs) or hops (also each hop's input and output).")
    var points: Components.Parameters.CapturePoints?

    @Option(help: "Whose bytes: client_to_server, server_to_client or both (default both).")
    var direction: Components.Schemas.DirectionSelection?

    @Option(help: "The most bytes the gateway holds for this reader before dropping packets (default 8 MiB).")
    var bufferBytes: Int?

    @Option(name: .shortAndLong, help: "Write the pcapng to FILE instead of stdout ('-' is stdout).")
    var output: String?

    func validate() throws {
        guard (session == nil) != (listener == nil) else {
            throw ValidationError("give a SESSION id or --listener ID, not both")
        }
        if output == nil || output == "-", isatty(STDOUT_FILENO) == 1 {
            throw ValidationError("stdout is a terminal: give -o FILE or pipe the pcapng into a reader")
        }
    }

    func run() throws {
        let client = try global.client(transport: StreamingTransport(idleTimeout: Self.idleTimeout))
        let (url, session, listener, points, direction, bufferBytes, output) =
            (global.resolvedURL, session, listener, points, direction, bufferBytes, output)
        // A closed pipe must be EPIPE for the writer, not the end of the process.
        signal(SIGPIPE, SIG_IGN)
        let interrupt = Interrupt()
        try blocking {
            do {
                try await interrupt.cancelling {
                    let body = try await Self.open(
                        client, session: session, listener: listener, points: points, direction: direction,
                        bufferBytes: bufferBytes)
                    // Opened only once the gateway said yes: a refused capture leaves no file.
                    let sink = output == nil || output == "-" ? ByteSink.standardOutput() : try ByteSink.file(output ?? "")
                    defer { sink.close() }
                    for try await chunk in body {
                        if try sink.write(chunk) == .readerLeft { return }
                    }
                }
            } catch {
                throw CtlFailure(error, adminURL: url)
            }
        }
        // The process exits now, which closes the connection and so ends a capture cut short.
    }

    /// Asks for the session's or the listener's capture; the body streams its pcapng.
    private static func open(
        _ client: Client, session: String?, listener: String?, points: Components.Parameters.CapturePoints?,
        direction: Components.Schemas.DirectionSelection?, bufferBytes: Int?
    ) async throws -> HTTPBody {
        if let session {
            let answer = try await client.captureSession(
                path: .init(id: session), query: .init(points: points, direction: direction, bufferBytes: bufferBytes))
            guard case .ok(let ok) = answer else { throw CtlFailure.unexpected("\(answer)") }
            return try ok.body.applicationXPcapng
        }
        let answer = try await client.captureListener(
            path: .init(id: listener ?? ""), query: .init(points: points, direction: direction, bufferBytes: bufferBytes))
        guard case .ok(let ok) = answer else { throw CtlFailure.unexpected("\(answer)") }
        return try ok.body.applicationXPcapng
    }
}
