import Logging
import PostgresNIO

extension ConfigStore {
    /// The last step of every change's transaction: bumps `config_version` and notifies.
    /// The bump comes last so the row lock, which orders changes across nodes, is held for
    /// the COMMIT only; a client that vanishes before its COMMIT does not hold it long
    /// (the server ends a transaction left idle for 5 s).
    static func changed(notifying payload: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SET LOCAL idle_in_transaction_session_timeout = '5s'", logger: logger)
        try await connection.query("UPDATE config_version SET version = version + 1", logger: logger)
        try await connection.query("SELECT pg_notify(\(ConfigChange.channel), \(payload))", logger: logger)
    }

    /// How many changes the cluster's configuration has seen.
    func version() async throws -> Int64 {
        try await database.run { [logger = database.logger] connection in
            try await Self.version(on: connection, logger: logger)
        }
    }

    static func version(on connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        for try await version in try await connection.query("SELECT version FROM config_version", logger: logger)
            .decode(Int64.self) {
            return version
        }
        throw ClusterError("config_version has no row")
    }
}
