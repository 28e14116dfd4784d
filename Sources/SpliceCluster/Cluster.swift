import Dispatch
import Foundation
import Logging
import PostgresNIO
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane
import Synchronization

/// A gateway's membership of a cluster (`--cluster-db`): the database link, the node's
/// registration and heartbeat, and the configuration kept in step with the database.
///
/// Start-up goes in three steps, because the node number must be known before the gateway
/// exists (its session ids carry it) and the node's name may need the admin port, bound
/// later: `open` (reach the database, migrate, take a number), `attach` (the API's side for
/// the gateway), `start` (register, reconcile once, then heartbeat and listen).
public final class Cluster: Sendable {
    /// How long `open` waits for an unreachable database before giving up.
    public static let startupWait: Duration = .seconds(5)
    /// Between heartbeats.
    static let heartbeatInterval: Duration = .seconds(1)

    /// This node's number, new at each start: ≥ 1 and never given to another node.
    public let nodeNumber: UInt64
    private let database: Database
    private let nodes: NodeStore
    private let config: ConfigStore
    private let logger: Logger
    private let parts = Mutex<Parts?>(nil)
    private let loops = Mutex<Task<Void, Never>?>(nil)
    /// A heartbeat of this start wrote the node's row: only then does `stop` deregister. A
    /// start refused (a live node has the name) must not delete the live node's bind states.
    private let registered = Atomic<Bool>(false)

    private struct Parts: Sendable {
        let membership: Membership
        let sync: ConfigSync
    }

    private init(database: Database, nodeNumber: UInt64, logger: Logger) {
        self.database = database
        self.nodes = NodeStore(database: database)
        self.config = ConfigStore(database: database, nodeNumber: nodeNumber)
        self.nodeNumber = nodeNumber
        self.logger = logger
    }

    /// Reaches the database (retrying for `startupWait`), creates or migrates the schema
    /// and takes a node number (or keeps `nodeNumber`, the one of the node whose process this
    /// one takes over: its sessions' ids carry it). On a database it has just created, the
    /// config file's listeners and mediators (`seed`) become the cluster's. Blocks: for start-up.
    public static func open(url: DatabaseURL, seedListeners: [ListenerSpec], seedMediators: [MediatorSpec],
                            nodeNumber: UInt64? = nil, logger: Logger) throws(ClusterError) -> Cluster {
        let database = Database(url: url, logger: logger)
        do {
            let number = try blocking {
                let deadline = ContinuousClock.now + startupWait
                while true {
                    do {
                        try await database.transaction(limit: .seconds(10)) { connection in
                            let found = try await Schema.migrate(connection, logger: logger)
                            if found == 0 {
                                try await ConfigStore.seed(listeners: seedListeners, mediators: seedMediators,
                                                           on: connection, logger: logger)
                            }
                        }
                        if let nodeNumber { return nodeNumber }
                        let number = try await NodeStore(database: database).nextNodeNumber()
                        // Its sessions are numbered from number × 10¹² + 1 on, in a UInt64.
                        guard number < UInt64.max / ClusterNode.sessionNumberStride else {
                            let most = UInt64.max / ClusterNode.sessionNumberStride - 1
                            throw NodeIdentityError(description: "node number \(number) is too large for session "
                                + "ids (at most \(most)): reset the sequence node_numbers")
                        }
                        return number
                    } catch let error as ClusterError where ContinuousClock.now < deadline && !error.permanent {
                        logger.notice("waiting for the cluster database", metadata: ["reason": "\(error)"])
                        try await Task.sleep(for: .milliseconds(250))
                    }
                }
            }
            logger.notice("cluster database ready", metadata: ["url": "\(url)", "node_number": "\(number)"])
            return Cluster(database: database, nodeNumber: number, logger: logger)
        } catch {
            blocking { await database.close() }
            throw ClusterError("cannot use the cluster database \(url): \(Database.reason(error))")
        }
    }

    /// The API's side for `gateway`: who decides changes, and who is in the cluster.
    public func attach(gateway: Gateway, bindHost: String?, version: String)
        -> (authority: any ConfigAuthority, membership: any ClusterMembership)
    {
        let now = Date()
        let membership = Membership(gateway: gateway, node: ClusterNode(
            name: "node-\(nodeNumber)", number: nodeNumber, adminURL: "", version: version, startedAt: now,
            heartbeatAt: now, sessions: 0))
        let sync = ConfigSync(gateway: gateway, store: config, membership: membership, bindHost: bindHost,
                              logger: logger)
        parts.withLock { $0 = Parts(membership: membership, sync: sync) }
        return (ClusterAuthority(gateway: gateway, store: config, sync: sync, membership: membership), membership)
    }

    /// Registers the node as `name` at `adminURL`, applies the database's configuration
    /// once, then heartbeats and follows changes until `stop`. Blocks until the first
    /// reconciliation is done, so listeners are up when start-up reports ready.
    ///
    /// A successor (`succeeding`, checked by `confirmSuccession`) goes on where its
    /// predecessor's heartbeat stopped: a first round that cannot reach the database is
    /// logged and retried by the loops, since the sessions are this process's already.
    public func start(name: String, adminURL: String, succeeding: Bool = false) throws(ClusterError) {
        guard let parts = parts.withLock({ $0 }) else { throw ClusterError("start before attach") }
        parts.membership.rename(name, adminURL: adminURL)
        do {
            try Self.blocking { [self] in
                if !succeeding { try await ensureNameFree(parts.membership.localNode) }
                try await heartbeat(parts)
                await parts.sync.reconcile()
                try await parts.sync.tick()
            }
        } catch where succeeding {
            logger.warning("cluster database not reached after the take-over; heartbeating as soon as it answers",
                           metadata: ["reason": "\(Database.reason(error))"])
            parts.sync.dirty.store(true, ordering: .relaxed)
        } catch {
            throw ClusterError("cannot join the cluster as '\(name)': \(Database.reason(error))")
        }
        logger.notice("joined the cluster", metadata: ["node": "\(name)", "number": "\(nodeNumber)",
                                                       "admin_url": "\(adminURL)"])
        let task = Task { [self] in
            await withDiscardingTaskGroup { group in
                group.addTask { await parts.sync.run() }
                group.addTask { await self.beat(parts) }
            }
        }
        loops.withLock { $0 = task }
    }

    /// Leaves the cluster: stops the loops, deletes this node's row (the others see it leave
    /// at once) and closes the database link. Blocks, at most a few seconds.
    public func stop() {
        leave(deregistering: true)
    }

    private func leave(deregistering: Bool) {
        let parts = parts.withLock { $0 }
        let task = loops.withLock { $0 }
        task?.cancel()
        parts?.sync.close()
        Self.blocking { [self] in
            await task?.value
            if deregistering, let parts, registered.load(ordering: .relaxed) {
                do {
                    try await nodes.deregister(parts.membership.localNode)
                } catch {
                    logger.warning("could not leave the cluster cleanly; the others drop this node within 5 s",
                                   metadata: ["reason": "\(Database.reason(error))"])
                }
            }
            await database.close()
        }
    }

    /// A successor taking over this node's process (same number) checks, before it
    /// acknowledges, that the database knows the number as `name` (the same `--node`), and
    /// reads the live nodes so that its first listing has them (its API answers from the
    /// release on, before `start`). Blocks.
    public func confirmSuccession(as name: String, adminURL: String) throws(ClusterError) {
        guard let parts = parts.withLock({ $0 }) else { throw ClusterError("confirmSuccession before attach") }
        parts.membership.rename(name, adminURL: adminURL)
        let number = nodeNumber
        let found: String?
        do {
            found = try Self.blocking { [nodes] in
                let name = try await nodes.name(ofNumber: number)
                parts.membership.update(live: try await nodes.live(window: Membership.liveWindow))
                return name
            }
        } catch {
            throw ClusterError("cannot reach the cluster database to take node \(number)'s place: \(Database.reason(error))")
        }
        guard let found else {
            throw ClusterError("the running gateway's node number \(number) is not in the cluster database; "
                + "is the successor's --cluster-db the same as the running gateway's?")
        }
        guard found == name else {
            throw ClusterError("the running gateway is cluster node '\(found)'; start its successor with --node \(found) "
                + "(it is '\(name)' now)")
        }
    }

    /// A successor has taken this node's place (its number, name and admin socket): stops the
    /// loops and closes the database link like `stop`, but leaves the node's row and bind
    /// states, so that the other nodes never see the node leave. Blocks, at most a few seconds.
    public func handOver() {
        leave(deregistering: false)
        logger.notice("cluster node handed over to the successor process", metadata: ["number": "\(nodeNumber)"])
    }

    /// Waits while another live node has this name: one just killed (`kill -9`, then a
    /// supervisor's restart) leaves its row live for up to `liveWindow`. A node still
    /// heartbeating after that is a real duplicate, and start-up stops.
    private func ensureNameFree(_ node: ClusterNode) async throws {
        let deadline = ContinuousClock.now + Membership.liveWindow + .seconds(2)
        while true {
            let live = try await nodes.live(window: Membership.liveWindow)
            guard let other = live.first(where: { $0.name == node.name && $0.number != node.number }) else { return }
            guard ContinuousClock.now < deadline else {
                throw ClusterError("a live node already has that name (node number \(other.number), admin "
                    + "\(other.adminURL)); give this one another --node")
            }
            logger.notice("waiting for an earlier node of this name to leave the view", metadata: [
                "node": "\(node.name)", "other_number": "\(other.number)",
            ])
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    private func heartbeat(_ parts: Parts) async throws {
        parts.membership.update(live: try await nodes.heartbeat(parts.membership.localNode,
                                                                window: Membership.liveWindow))
        registered.store(true, ordering: .relaxed)
    }

    /// Every second: the heartbeat, the bind states the API shows, and a reconciliation if
    /// one is owed. A failed round drops the LISTEN link so that it reconnects.
    private func beat(_ parts: Parts) async {
        var healthy = true
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.heartbeatInterval)
            guard !Task.isCancelled else { return }
            do {
                do {
                    try await heartbeat(parts)
                } catch let error as NodeIdentityError {
                    // Every round: until an operator acts, this node is out of the view.
                    logger.error("cluster heartbeat refused", metadata: ["reason": "\(error)"])
                }
                try await parts.sync.tick()
                if !healthy { logger.notice("cluster heartbeat restored") }
                healthy = true
            } catch {
                if healthy {
                    logger.warning("cluster heartbeat failed", metadata: ["reason": "\(Database.reason(error))"])
                    parts.sync.linkLost()
                }
                healthy = false
            }
        }
    }

    /// Runs `body` to its end from synchronous start-up or shutdown code (never on a task).
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let value = try await body()
                outcome.withLock { $0 = .success(value) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        guard let result = outcome.withLock({ $0 }) else { throw ClusterError("no outcome") }
        return try result.get()
    }

    private static func blocking(_ body: @escaping @Sendable () async -> Void) {
        try? blocking { () async throws -> Void in await body() }
    }
}
