import Foundation
import PostgresNIO

/// A `--cluster-db` URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, as postgres-nio's
/// connection configuration. `?host=/DIR` reaches the server on its Unix socket in DIR
/// (libpq's spelling); TLS is not supported yet (`sslmode` may only be `disable`).
public struct DatabaseURL: Sendable, CustomStringConvertible {
    /// How to connect.
    let configuration: PostgresConnection.Configuration
    /// The URL without its password, for messages.
    public let description: String

    /// Parses `text`; the error says what is wrong with it.
    public init(parsing text: String) throws(ClusterError) {
        guard let url = URLComponents(string: text), let scheme = url.scheme,
              scheme == "postgres" || scheme == "postgresql"
        else { throw ClusterError("--cluster-db must be a URL such as postgres://user:password@host:5432/database") }
        guard let user = url.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw ClusterError("--cluster-db needs a user name (postgres://USER@host/database)")
        }
        let password = url.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = url.percentEncodedPath.removingPercentEncoding ?? ""
        let database = path.hasPrefix("/") ? String(path.dropFirst()) : path
        let port = url.port ?? 5432
        guard (1...65_535).contains(port) else { throw ClusterError("--cluster-db: port \(port) is out of range") }
        var socketDirectory: String?
        for item in url.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("host", let value?) where value.hasPrefix("/"): socketDirectory = value
            case ("sslmode", "disable"): continue
            default: throw ClusterError("--cluster-db: unsupported parameter '\(item.name)' (only host=/socket/dir and sslmode=disable)")
            }
        }
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user,
                                  password: password, database: database.isEmpty ? nil : database)
        } else {
            guard let host = url.host, !host.isEmpty else { throw ClusterError("--cluster-db needs a host") }
            configuration = .init(host: host, port: port, username: user, password: password,
                                  database: database.isEmpty ? nil : database, tls: .disable)
        }
        configuration.options.connectTimeout = .seconds(2)
        self.configuration = configuration
        var shown = url
        shown.password = password == nil ? nil : "***"
        shown.query = url.query
        description = shown.string ?? scheme + "://…"
    }
}
