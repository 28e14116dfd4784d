import Logging
import PostgresNIO

/// The cluster's tables, created and migrated by the gateway itself.
///
/// `splicegate_schema` holds the versions applied. Every node runs `migrate` at start, in
/// one transaction under an advisory lock, so nodes starting together apply each step once
/// and in order; a node finding a version newer than it knows refuses to start.
enum Schema {
    /// Steps in order; step i brings the schema to version i + 1. Never edit a released
    /// step: append one.
    static let migrations: [[PostgresQuery]] = [
        [
            "CREATE SEQUENCE node_numbers",
            """
            CREATE TABLE nodes (
                name text PRIMARY KEY,
                number bigint NOT NULL UNIQUE,
                admin_url text NOT NULL,
                version text NOT NULL,
                started_at timestamptz NOT NULL,
                heartbeat_at timestamptz NOT NULL,
                sessions bigint NOT NULL DEFAULT 0)
            """,
            "CREATE SEQUENCE listener_ids",
            """
            CREATE TABLE listeners (
                id bigint PRIMARY KEY,
                spec text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE listener_binds (
                listener_id bigint NOT NULL REFERENCES listeners (id) ON DELETE CASCADE,
                node text NOT NULL,
                state text NOT NULL CHECK (state IN ('bound', 'failed')),
                address text NOT NULL,
                error text,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (listener_id, node))
            """,
            """
            CREATE TABLE mediators (
                name text PRIMARY KEY,
                spec text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now())
            """,
        ],
        [
            // Bumped in the transaction of every listener or mediator change, and read by
            // each heartbeat round: a node whose LISTEN link went silent (an idle timeout
            // of a NAT or a load balancer, a pooler) still sees that something changed.
            """
            CREATE TABLE config_version (
                one boolean PRIMARY KEY DEFAULT true CHECK (one),
                version bigint NOT NULL)
            """,
            "INSERT INTO config_version (version) VALUES (0)",
            // Bind states by node number, not name: two processes that share a name (one
            // stopped, then back) must not overwrite each other's. Rewritten by every node
            // at its start.
            "DELETE FROM listener_binds",
            "ALTER TABLE listener_binds ADD COLUMN node_number bigint NOT NULL",
            "ALTER TABLE listener_binds DROP CONSTRAINT listener_binds_pkey",
            "ALTER TABLE listener_binds ADD PRIMARY KEY (listener_id, node_number)",
        ],
        [
            // Every node binds every listener: two with one listen address (made at once
            // through two nodes, each free to bind it before the other's change arrived)
            // would split the clients between two upstreams. Port 0 picks a port per node.
            """
            CREATE UNIQUE INDEX listeners_listen ON listeners ((spec::jsonb ->> 'listen'))
                WHERE (spec::jsonb ->> 'listen') NOT LIKE '%:0'
            """,
        ],
    ]

    /// The version this build brings the schema to.
    static var currentVersion: Int { migrations.count }

    /// Arbitrary, fixed: the advisory lock key that serialises migrations across nodes.
    private static let lockKey: Int64 = 0x5350_4C47_4154_45

    /// Brings the schema up to date on `connection` (inside a transaction); returns the
    /// version found before, 0 for an empty database.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
        try await connection.query("CREATE TABLE IF NOT EXISTS splicegate_schema (version integer NOT NULL)",
                                   logger: logger)
        var found = 0
        for try await version in try await connection.query(
            "SELECT coalesce(max(version), 0)::integer FROM splicegate_schema", logger: logger
        ).decode(Int32.self) {
            found = Int(version)
        }
        guard found <= currentVersion else {
            throw ClusterError("the cluster database has schema version \(found), newer than this build knows "
                + "(\(currentVersion)): upgrade this node")
        }
        for version in stride(from: found + 1, through: currentVersion, by: 1) {
            for statement in migrations[version - 1] {
                try await connection.query(statement, logger: logger)
            }
            try await connection.query("INSERT INTO splicegate_schema (version) VALUES (\(Int32(version)))",
                                       logger: logger)
            logger.notice("cluster database schema migrated", metadata: ["version": "\(version)"])
        }
        return found
    }
}
