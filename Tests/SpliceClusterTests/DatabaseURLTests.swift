import Testing

@testable import SpliceCluster

@Suite("DatabaseURL")
struct DatabaseURLTests {
    @Test func tcpURLWithPasswordAndDatabase() throws {
        let url = try DatabaseURL(parsing: "postgres://splice:s%40cret@db.example:6543/gw")
        #expect(url.configuration.host == "db.example")
        #expect(url.configuration.port == 6543)
        #expect(url.configuration.username == "splice")
        #expect(url.configuration.password == "s@cret")
        #expect(url.configuration.database == "gw")
        #expect(!url.description.contains("cret"), "the password must not show in messages")
    }

    @Test func defaultsPortAndTakesAUnixSocketDirectory() throws {
        let tcp = try DatabaseURL(parsing: "postgresql://u@127.0.0.1/")
        #expect(tcp.configuration.port == 5432)
        #expect(tcp.configuration.database == nil)
        let socket = try DatabaseURL(parsing: "postgres://u@localhost:5433/db?host=/run/postgresql")
        #expect(socket.configuration.unixSocketPath == "/run/postgresql/.s.PGSQL.5433")
    }

    @Test(arguments: [
        "", "localhost:5432", "mysql://u@h/db", "postgres://h:5432/db", "postgres://u@h:70000/db",
        "postgres://u@h/db?sslmode=allow", "postgres://u@h/db?sslmode=verify", "postgres://u@/db",
        "postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "postgres://u@h/db?sslcert=c.pem",
        "postgres://u@h/db?sslmode=require&sslmode=disable",
    ])
    func refusesWhatItCannotUse(_ text: String) {
        #expect(throws: ClusterError.self) { try DatabaseURL(parsing: text) }
    }

    @Test func takesLibpqsSSLModesPreferWhenAbsent() throws {
        func tls(_ query: String) throws -> String {
            "\(try DatabaseURL(parsing: "postgres://u@db.example/gw\(query)").configuration.tls)"
        }
        #expect(try tls("").contains("prefer"))
        #expect(try tls("?sslmode=disable").contains("disable"))
        #expect(try tls("?sslmode=prefer").contains("prefer"))
        for mode in ["require", "verify-ca", "verify-full"] {
            #expect(try tls("?sslmode=\(mode)").contains("require"), "\(mode)")
        }
    }
}
