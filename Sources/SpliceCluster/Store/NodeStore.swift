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

    /// Writes this node's row with a heartbeat now, and reads the nodes whose heartbeat is
    /// within `window` of the database's clock. The row is this node's when its number is
    /// this node's, or when the process that wrote it has been silent for `window` (a node
    /// of this name stopped, or killed, and started again). A row found missing (an operator
    /// or a schema created anew) is inserted again, and the number sequence moved past this
    /// node's number so that no new node is given it. Throws `NodeIdentityError` when the
    /// name's row belongs to another live process, or the number to another node.
    func heartbeat(_ node: ClusterNode, window: Duration) async throws -> [ClusterNode] {
        let seconds = Double(window.components.seconds)
        return try await database.run { [logger = database.logger] connection in
            var written = false
            var inserted = false
            do {
                for try await fresh in try await connection.query("""
                    INSERT INTO nodes (name, number, admin_url, version, started_at, heartbeat_at, sessions)
                    VALUES (\(node.name), \(Int64(node.number)), \(node.adminURL), \(node.version), \(node.startedAt),
                            now(), \(Int64(node.sessions)))
                    ON CONFLICT (name) DO UPDATE SET number = EXCLUDED.number, admin_url = EXCLUDED.admin_url,
                        version = EXCLUDED.version, started_at = EXCLUDED.started_at, heartbeat_at = now(),
                        sessions = EXCLUDED.sessions
                    WHERE nodes.number = EXCLUDED.number
                        OR nodes.heartbeat_at <= now() - make_interval(secs => \(seconds))
                    RETURNING (xmax = 0)
                    """, logger: logger).decode(Bool.self) {
                    written = true
                    inserted = fresh
                }
            } catch let error as PSQLError where error.sqlState == "23505" {
                throw NodeIdentityError(description: "node number \(node.number) belongs to another node in the "
                    + "cluster database (its tables were created anew under this node); this node stays out "
                    + "of the cluster's view rather than share session ids: restart it")
            }
            guard written else {
                throw NodeIdentityError(description: "another live process is node '\(node.name)' in the cluster "
                    + "database; this one (node number \(node.number)) stays out of the cluster's view: stop it, "
                    + "or restart it with another --node")
            }
            if inserted {
                try await connection.query("""
                    SELECT setval('node_numbers', GREATEST(\(Int64(node.number)), (SELECT last_value FROM node_numbers)))
                    """, logger: logger)
            }
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

    /// The name of the node row holding `number`, if there is one.
    func name(ofNumber number: UInt64) async throws -> String? {
        try await database.run { [logger = database.logger] connection in
            for try await name in try await connection.query(
                "SELECT name FROM nodes WHERE number = \(Int64(number))", logger: logger).decode(String.self) {
                return name
            }
            return nil
        }
    }

    /// Removes this node and its bind states (clean stop): the others see it leave at once.
    func deregister(_ node: ClusterNode) async throws {
        try await database.transaction { [logger = database.logger] connection in
            try await connection.query("DELETE FROM listener_binds WHERE node_number = \(Int64(node.number))",
                                       logger: logger)
            try await connection.query(
                "DELETE FROM nodes WHERE name = \(node.name) AND number = \(Int64(node.number))", logger: logger)
        }
    }
}

/// This node's row in `nodes` is not its own (its name or number taken by another live
/// node): it does not heartbeat, so it is out of the cluster's view, and it says so.
struct NodeIdentityError: Error, CustomStringConvertible {
    let description: String
}
