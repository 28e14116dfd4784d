import Foundation
import Logging
import PostgresNIO
import SpliceControlPlane
import SpliceCore

/// The listeners, mediators and bind states in the database. Specs are stored as the same
/// JSON objects as the API's POST bodies (what the state file holds), through the same codecs.
struct ConfigStore: Sendable {
    let database: Database
    /// This node's number: its bind states are keyed by it.
    let nodeNumber: UInt64

    /// Everything configured, for a full reconciliation.
    struct Snapshot: Sendable {
        var listeners: [ListenerID: ListenerSpec] = [:]
        /// When each listener was created.
        var created: [ListenerID: Date] = [:]
        /// `config_version` as read before the rest: a change committed meanwhile moves it past.
        var version: Int64 = 0
        var mediators: [MediatorName: MediatorSpec] = [:]
    }

    /// A fresh listener id, unique in the cluster.
    func nextListenerID() async throws -> ListenerID {
        try await database.run { [logger = database.logger] connection in
            for try await number in try await connection.query("SELECT nextval('listener_ids')", logger: logger)
                .decode(Int64.self) {
                return ListenerID(number: UInt64(number))
            }
            throw ClusterError("nextval returned no row")
        }
    }

    /// Records a listener this node has bound, with its bind, and tells every node; 409 when
    /// another listener of the cluster has its listen address.
    func insertListener(_ id: ListenerID, spec: ListenerSpec, bind: ListenerBind, origin: String) async throws {
        let text = spec.json.serialized()
        let payload = ConfigChange.listenerAdded(id).payload(origin: origin)
        do {
            try await database.transaction { [logger = database.logger] connection in
                try await connection.query(
                    "INSERT INTO listeners (id, spec) VALUES (\(Int64(id.number)), \(text))", logger: logger)
                try await Self.upsert(bind, listener: id, node: nodeNumber, on: connection, logger: logger)
                try await Self.changed(notifying: payload, on: connection, logger: logger)
            }
        } catch let error as PSQLError where error.sqlState == "23505" {
            throw APIError.conflict("listen address \(spec.listen) is taken by another listener of the cluster")
        }
    }

    /// Deletes a listener (its binds go with it) and tells every node; false if there was none.
    func deleteListener(_ id: ListenerID, closeSessions: Bool, origin: String) async throws -> Bool {
        try await delete("DELETE FROM listeners WHERE id = \(Int64(id.number)) RETURNING id",
                         notifying: ConfigChange.listenerRemoved(id, closeSessions: closeSessions).payload(origin: origin))
    }

    /// Records a mediator and tells every node; 409 when the name is taken in the cluster.
    func insertMediator(_ spec: MediatorSpec, origin: String) async throws {
        let text = spec.json.serialized()
        let name = spec.name.text
        let payload = ConfigChange.mediatorAdded(spec.name).payload(origin: origin)
        do {
            try await database.transaction { [logger = database.logger] connection in
                try await connection.query("INSERT INTO mediators (name, spec) VALUES (\(name), \(text))", logger: logger)
                try await Self.changed(notifying: payload, on: connection, logger: logger)
            }
        } catch let error as PSQLError where error.sqlState == "23505" {
            throw APIError.conflict("a mediator named '\(name)' is already registered in the cluster")
        }
    }

    /// Deletes a mediator and tells every node; false if there was none.
    func deleteMediator(_ name: MediatorName, origin: String) async throws -> Bool {
        try await delete("DELETE FROM mediators WHERE name = \(name.text) RETURNING name",
                         notifying: ConfigChange.mediatorRemoved(name).payload(origin: origin))
    }

    /// Runs a `DELETE … RETURNING` and, when it deleted a row, the notification, in one
    /// transaction; whether a row was deleted.
    private func delete(_ statement: PostgresQuery, notifying payload: String) async throws -> Bool {
        try await database.transaction { [logger = database.logger] connection in
            var deleted = false
            for try await _ in try await connection.query(statement, logger: logger) {
                deleted = true
            }
            if deleted {
                try await Self.changed(notifying: payload, on: connection, logger: logger)
            }
            return deleted
        }
    }

    /// Every listener and mediator. An entry this build cannot read is skipped and logged,
    /// so one bad row does not stop a node from taking the rest.
    func load() async throws -> Snapshot {
        try await database.run { [logger = database.logger] connection in
            var snapshot = Snapshot()
            snapshot.version = try await Self.version(on: connection, logger: logger)
            for try await (name, text) in try await connection.query(
                "SELECT name, spec FROM mediators", logger: logger
            ).decode((String, String).self) {
                do throws(APIError) {
                    snapshot.mediators[MediatorName(name)] = try MediatorSpec(json: JSON.parse(text), allowExec: true)
                } catch {
                    logger.error("cluster mediator cannot be read, skipped", metadata: [
                        "mediator": "\(name)", "reason": "\(error.detail)",
                    ])
                }
            }
            for try await (number, text, created) in try await connection.query(
                "SELECT id, spec, created_at FROM listeners", logger: logger
            ).decode((Int64, String, Date).self) {
                let id = ListenerID(number: UInt64(number))
                snapshot.created[id] = created
                do throws(APIError) {
                    snapshot.listeners[id] = try ListenerSpec(json: JSON.parse(text))
                } catch {
                    logger.error("cluster listener cannot be read, skipped", metadata: [
                        "listener": "\(id)", "reason": "\(error.detail)",
                    ])
                }
            }
            return snapshot
        }
    }

    /// Writes the config file's listeners and mediators into a database just created (in
    /// the migration's transaction, so only the node that created it seeds it).
    static func seed(listeners: [ListenerSpec], mediators: [MediatorSpec], on connection: PostgresConnection,
                     logger: Logger) async throws {
        for spec in mediators {
            try await connection.query(
                "INSERT INTO mediators (name, spec) VALUES (\(spec.name.text), \(spec.json.serialized()))", logger: logger)
        }
        for spec in listeners {
            try await connection.query(
                "INSERT INTO listeners (id, spec) VALUES (nextval('listener_ids'), \(spec.json.serialized()))",
                logger: logger)
        }
        if !listeners.isEmpty || !mediators.isEmpty {
            logger.notice("cluster database seeded from the config file", metadata: [
                "listeners": "\(listeners.count)", "mediators": "\(mediators.count)",
            ])
        }
    }

    /// Records how this node holds a listener; nothing if the listener is gone meanwhile.
    /// Whether the listener still exists (false: deleted by another node meanwhile).
    func writeBind(_ bind: ListenerBind, listener id: ListenerID) async throws -> Bool {
        try await database.run { [logger = database.logger, nodeNumber] connection in
            do {
                try await Self.upsert(bind, listener: id, node: nodeNumber, on: connection, logger: logger)
                return true
            } catch let error as PSQLError where error.sqlState == "23503" {
                return false
            }
        }
    }

    private static func upsert(_ bind: ListenerBind, listener id: ListenerID, node number: UInt64,
                               on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO listener_binds (listener_id, node_number, node, state, address, error, updated_at)
            VALUES (\(Int64(id.number)), \(Int64(number)), \(bind.node), \(bind.state.rawValue), \(bind.listen),
                    \(bind.error), now())
            ON CONFLICT (listener_id, node_number) DO UPDATE SET node = EXCLUDED.node, state = EXCLUDED.state,
                address = EXCLUDED.address, error = EXCLUDED.error, updated_at = now()
            """, logger: logger)
    }

    /// The bind states of the nodes alive within `window`, by listener.
    func binds(window: Duration) async throws -> [ListenerID: [ListenerBind]] {
        let seconds = Double(window.components.seconds)
        return try await database.run { [logger = database.logger] connection in
            var binds: [ListenerID: [ListenerBind]] = [:]
            for try await (number, node, state, address, error) in try await connection.query("""
                SELECT b.listener_id, n.name, b.state, b.address, b.error FROM listener_binds b
                JOIN nodes n ON n.number = b.node_number
                WHERE n.heartbeat_at > now() - make_interval(secs => \(seconds))
                ORDER BY n.name
                """, logger: logger
            ).decode((Int64, String, String, String, String?).self) {
                binds[ListenerID(number: UInt64(number)), default: []].append(ListenerBind(
                    node: node, state: ListenerBind.State(rawValue: state) ?? .failed, listen: address, error: error))
            }
            return binds
        }
    }
}
