import Foundation
import NIOSSL
import PostgresNIO

/// A `--cluster-db` URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, as postgres-nio's
/// connection configuration. libpq's spelling of the parameters: `?host=/DIR` reaches the
/// server on its Unix socket in DIR; `sslmode` (`disable`, `prefer` when absent, `require`,
/// `verify-ca`, `verify-full`) and `sslrootcert=FILE` (the CA that signed the server's
/// certificate; the system's CAs when absent) set TLS over TCP.
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
        var mode = SSLMode.prefer
        var rootCertificate: String?
        var seen = Set<String>()
        for item in url.queryItems ?? [] {
            guard seen.insert(item.name).inserted else {
                throw ClusterError("--cluster-db: parameter '\(item.name)' is given more than once")
            }
            switch (item.name, item.value) {
            case ("host", let value?) where value.hasPrefix("/"): socketDirectory = value
            case ("sslmode", let value?):
                guard let known = SSLMode(rawValue: value) else {
                    throw ClusterError("--cluster-db: sslmode must be one of "
                        + SSLMode.allCases.map(\.rawValue).joined(separator: ", ") + ", got '\(value)'")
                }
                mode = known
            case ("sslrootcert", let value?) where !value.isEmpty: rootCertificate = value
            default:
                throw ClusterError("--cluster-db: unsupported parameter '\(item.name)' (host=/socket/dir, sslmode, "
                    + "sslrootcert=FILE)")
            }
        }
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user,
                                  password: password, database: database.isEmpty ? nil : database)
        } else {
            guard let host = url.host, !host.isEmpty else { throw ClusterError("--cluster-db needs a host") }
            configuration = .init(host: host, port: port, username: user, password: password,
                                  database: database.isEmpty ? nil : database,
                                  tls: try mode.tls(rootCertificate: rootCertificate))
        }
        configuration.options.connectTimeout = .seconds(2)
        self.configuration = configuration
        var shown = url
        shown.password = password == nil ? nil : "***"
        shown.query = url.query
        description = shown.string ?? scheme + "://…"
    }
}

/// libpq's `sslmode`, as far as a client that cannot fall back from TLS to plain text on a
/// failed handshake can follow it (`allow` is not offered).
enum SSLMode: String, CaseIterable, Sendable {
    /// Plain text.
    case disable
    /// TLS when the server offers it, without checking its certificate; else plain text.
    case prefer
    /// TLS, without checking the server's certificate.
    case require
    /// TLS with a certificate signed by a trusted CA, for any name.
    case verifyCA = "verify-ca"
    /// TLS with a certificate signed by a trusted CA for the host of the URL.
    case verifyFull = "verify-full"

    /// postgres-nio's TLS setting; `rootCertificate` (PEM file) replaces the system's CAs.
    func tls(rootCertificate: String?) throws(ClusterError) -> PostgresConnection.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch self {
        case .disable:
            return .disable
        case .prefer, .require:
            tls.certificateVerification = .none
        case .verifyCA:
            tls.certificateVerification = .noHostnameVerification
        case .verifyFull:
            tls.certificateVerification = .fullVerification
        }
        if let rootCertificate {
            guard FileManager.default.isReadableFile(atPath: rootCertificate) else {
                throw ClusterError("--cluster-db: sslrootcert \(rootCertificate) cannot be read")
            }
            tls.trustRoots = .file(rootCertificate)
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw ClusterError("--cluster-db: TLS cannot be set up (\(error))")
        }
        return self == .prefer ? .prefer(context) : .require(context)
    }
}
