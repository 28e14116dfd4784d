import Foundation
import Logging
import PostgresNIO
import SpliceControlPlane

/// The `nodes` table: registration, heartbeats, and who is live.
struct NodeStore: Sendable {
    let database: Database

    /// A number no node has had: new at every start, so session ids stay unique in the cluster.
    func nextNodeNumber() async throws -> UInt64 {
        try await database.run { [logger = database.logger] connection in
            for try await number in try await connection.query("SELECT nextval('node_numbers')", logger: logger)
                .decode(Int64.self) {
                return UInt64(number)
            }
            throw ClusterError("nextval returned no row")
        }
    }

    /// Writes this node's row (inserting it again if another node's clean-up or an operator
    /// removed it) with a heartbeat now, and reads the nodes whose heartbeat is within
    /// `window` of the database's clock.
    func heartbeat(_ node: ClusterNode, window: Duration) async throws -> [ClusterNode] {
        let seconds = Double(window.components.seconds)
        return try await database.run { [logger = database.logger] connection in
            try await connection.query("""
                INSERT INTO nodes (name, number, admin_url, version, started_at, heartbeat_at, sessions)
                VALUES (\(node.name), \(Int64(node.number)), \(node.adminURL), \(node.version), \(node.startedAt),
                        now(), \(Int64(node.sessions)))
                ON CONFLICT (name) DO UPDATE SET number = EXCLUDED.number, admin_url = EXCLUDED.admin_url,
                    version = EXCLUDED.version, started_at = EXCLUDED.started_at, heartbeat_at = now(),
                    sessions = EXCLUDED.sessions
                """, logger: logger)
            return try await Self.live(seconds: seconds, on: connection, logger: logger)
        }
    }

    /// The nodes whose heartbeat is within `window` of the database's clock.
    func live(window: Duration) async throws -> [ClusterNode] {
        let seconds = Double(window.components.seconds)
        return try await database.run { [logger = database.logger] connection in
            try await Self.live(seconds: seconds, on: connection, logger: logger)
        }
    }

    private static func live(seconds: Double, on connection: PostgresConnection, logger: Logger) async throws
        -> [ClusterNode]
    {
        var live: [ClusterNode] = []
        for try await (name, number, url, version, started, heartbeat, sessions) in try await connection.query("""
            SELECT name, number, admin_url, version, started_at, heartbeat_at, sessions FROM nodes
            WHERE heartbeat_at > now() - make_interval(secs => \(seconds)) ORDER BY name
            """, logger: logger
        ).decode((String, Int64, String, String, Date, Date, Int64).self) {
            live.append(ClusterNode(name: name, number: UInt64(number), adminURL: url, version: version,
                                    startedAt: started, heartbeatAt: heartbeat, sessions: Int(sessions)))
        }
        return live
    }

    /// Removes this node and its bind states (clean stop): the others see it leave at once.
    func deregister(_ node: ClusterNode) async throws {
        try await database.transaction { [logger = database.logger] connection in
            try await connection.query("DELETE FROM listener_binds WHERE node = \(node.name)", logger: logger)
            try await connection.query(
                "DELETE FROM nodes WHERE name = \(node.name) AND number = \(Int64(node.number))", logger: logger)
        }
    }
}
