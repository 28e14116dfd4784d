import ArgumentParser
import Foundation
import OpenAPIRuntime
import OpenAPIURLSession

/// The options every `ctl` command takes: where the gateway is, its token, the output form.
struct GlobalOptions: ParsableArguments {
    /// Where the admin API listens unless told otherwise.
    static let defaultAdminURL = "http://127.0.0.1:8080"

    @Option(name: .customLong("admin-url"), help: "Admin API base URL (env SPLICEGATE_ADMIN_URL; default \(defaultAdminURL)).")
    var adminURL: String?

    @Option(name: .customLong("token-file"), help: "File holding the admin token (env SPLICEGATE_ADMIN_TOKEN).")
    var tokenFile: String?

    @Flag(help: "Print the API's JSON instead of tables.")
    var json = false

    /// The admin URL from the flag, the environment or the default.
    var resolvedURL: String {
        adminURL ?? ProcessInfo.processInfo.environment["SPLICEGATE_ADMIN_URL"] ?? Self.defaultAdminURL
    }

    /// The generated client for the admin API, with the token when one is given.
    func client(transport: any ClientTransport = URLSessionTransport()) throws(CtlFailure) -> Client {
        // The operations' paths start with '/': a base URL ending in one would double it.
        var text = resolvedURL
        while text.hasSuffix("/") { text.removeLast() }
        guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme),
              url.host != nil
        else { throw .usage("admin URL must be http://HOST:PORT, got '\(text)'") }
        var middlewares: [any ClientMiddleware] = [ProblemMiddleware()]
        if let token = try token() { middlewares.append(BearerToken(token)) }
        return Client(serverURL: url, transport: transport, middlewares: middlewares)
    }

    /// The token from `--token-file` (trailing newline ignored) or the environment.
    private func token() throws(CtlFailure) -> String? {
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile),
                  let text = String(data: data, encoding: .utf8)
            else { throw .usage("cannot read token file \(tokenFile)") }
            let token = text.hasSuffix("\r\n") ? String(text.dropLast(2))
                : text.hasSuffix("\n") ? String(text.dropLast()) : text
            guard !token.isEmpty else { throw .usage("token file \(tokenFile) is empty") }
            return token
        }
        return ProcessInfo.processInfo.environment["SPLICEGATE_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Runs `body` with a client and prints what it returns as JSON or text.
    func perform(
        transport: any ClientTransport = URLSessionTransport(),
        _ body: @escaping @Sendable (Client) async throws -> Output
    ) throws {
        let client = try client(transport: transport)
        let url = resolvedURL
        let output = try blocking {
            do {
                return try await body(client)
            } catch {
                throw CtlFailure(error, adminURL: url)
            }
        }
        try output.print(json: json)
    }
}
