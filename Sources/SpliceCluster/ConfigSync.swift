import Foundation
import Logging
import PostgresNIO
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane
import Synchronization

/// Keeps the local gateway's listeners and mediators equal to the database's.
///
/// A dedicated connection LISTENs on `splicegate_config`; each notification, and each
/// (re)connection of that link, queues work that one consumer applies in order. On every
/// connection, and whenever a change could not be applied, a full reconciliation compares
/// the database with the gateway: adds what is missing, removes what is gone, re-registers
/// changed mediators, and records how this node holds each listener.
final class ConfigSync: Sendable {
    /// What the consumer does next.
    enum Work: Sendable {
        case notification(String)
        case reconcile
    }

    /// Listener ids and mediator names the API of this node is changing: a reconciliation
    /// leaves them alone until the change is committed or undone.
    ///
    /// The API changes the gateway before it commits (it binds a new listener, registers a
    /// new mediator, and undoes that if the commit fails), so a reconciliation that read the
    /// gateway after such a change and the database before its commit must not act on it
    /// even when the change has ended by the time it compares: it leaves alone everything
    /// changed at any moment of its round (`touched`), and looks again at the next round.
    struct InFlight: Sendable {
        private(set) var listeners = CountedSet<ListenerID>()
        private(set) var mediators = CountedSet<MediatorName>()
        /// Changing now, or at some moment since the current round began.
        private(set) var touched: (listeners: Set<ListenerID>, mediators: Set<MediatorName>) = ([], [])

        mutating func begin(listener id: ListenerID) {
            listeners.insert(id)
            touched.listeners.insert(id)
        }

        mutating func end(listener id: ListenerID) {
            listeners.remove(id)
        }

        mutating func begin(mediator name: MediatorName) {
            mediators.insert(name)
            touched.mediators.insert(name)
        }

        mutating func end(mediator name: MediatorName) {
            mediators.remove(name)
        }

        /// A reconciliation round begins: from now on `touched` is what is changing now and
        /// what begins later.
        mutating func beginRound() {
            touched = (listeners.members, mediators.members)
        }
    }

    let gateway: Gateway
    let store: ConfigStore
    private let database: Database
    private let membership: Membership
    /// `--bind-host`: replaces the host of every cluster listener on this node.
    let bindHost: String?
    let logger: Logger
    let inFlight = Mutex(InFlight())
    /// The bind states this node wrote, so unchanged ones are not written again.
    let written = Mutex<[ListenerID: ListenerBind]>([:])
    /// Every live node's bind states, as of the last round (what the API shows).
    private let view = Mutex<[ListenerID: [ListenerBind]]>([:])
    /// The database's listeners as of the last reconciliation, as this node would bind
    /// them, with when each was created: the API lists those not held here too.
    let known = Mutex<[ListenerID: (spec: ListenerSpec, createdAt: Date)]>([:])
    let dirty = Atomic<Bool>(false)
    /// `config_version` as of the last reconciliation that read the database.
    let reconciledVersion = Mutex<Int64?>(nil)
    /// A reconciliation is queued and not begun: another request adds nothing.
    let reconcileQueued = Atomic<Bool>(false)
    let bindRetries = Mutex(BindRetries())
    private let listenLink = Mutex<PostgresConnection?>(nil)
    private let work: AsyncStream<Work>
    private let queue: AsyncStream<Work>.Continuation

    init(gateway: Gateway, store: ConfigStore, membership: Membership, bindHost: String?, logger: Logger) {
        self.gateway = gateway
        self.store = store
        self.database = store.database
        self.membership = membership
        self.bindHost = bindHost
        self.logger = logger
        (work, queue) = AsyncStream.makeStream(of: Work.self)
    }

    var nodeName: String { membership.localNode.name }
    /// The origin of this node's notifications: its number, which no other process shares.
    var origin: String { "\(membership.localNode.number)" }

    // MARK: the API's side

    /// Marks a listener as being changed by this node's API until `end(listener:)`.
    func begin(listener id: ListenerID) {
        inFlight.withLock { $0.begin(listener: id) }
    }

    func end(listener id: ListenerID) {
        inFlight.withLock { $0.end(listener: id) }
    }

    /// Marks a mediator as being changed by this node's API until `end(mediator:)`.
    func begin(mediator name: MediatorName) {
        inFlight.withLock { $0.begin(mediator: name) }
    }

    func end(mediator name: MediatorName) {
        inFlight.withLock { $0.end(mediator: name) }
    }

    /// The spec as this node binds it: with `--bind-host`, on that host.
    func local(_ spec: ListenerSpec) -> ListenerSpec {
        guard let bindHost else { return spec }
        var spec = spec
        spec.listen.host = bindHost
        return spec
    }

    /// This node's bind state of a listener, as the API just wrote it.
    func recorded(_ bind: ListenerBind, listener id: ListenerID) {
        written.withLock { $0[id] = bind }
        view.withLock { view in
            view[id, default: []].removeAll { $0.node == bind.node }
            view[id, default: []].append(bind)
            view[id]?.sort { $0.node < $1.node }
        }
    }

    /// The listeners of the database that this node does not hold (its bind failed), as
    /// snapshots with no sessions.
    func notHeld(besides held: Set<ListenerID>) -> [ListenerSnapshot] {
        known.withLock { $0 }.filter { !held.contains($0.key) }.map { id, entry in
            ListenerSnapshot(id: id, spec: entry.spec, createdAt: entry.createdAt, activeSessions: 0,
                             totalSessions: 0, upstreamFailures: 0)
        }
    }

    /// A listener deleted from the database: no longer listed here.
    func forget(listener id: ListenerID) {
        _ = known.withLock { $0.removeValue(forKey: id) }
        bindRetries.withLock { $0.forget(id) }
        written.withLock { $0[id] = nil }
    }

    /// Each live node's bind state of a listener (empty until the first round has read it).
    func binds(of id: ListenerID) -> [ListenerBind] {
        view.withLock { $0[id] ?? [] }
    }

    // MARK: the loops

    /// Runs the LISTEN link and the consumer until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen() }
            group.addTask { await self.consume() }
        }
    }

    /// Stops the loops' link (at stop; the task's cancellation ends them).
    func close() {
        queue.finish()
        listenLink.withLock { $0 }?.closeNow()
    }

    /// One heartbeat round's share: reconcile again if something could not be applied or
    /// the configuration moved since the last reconciliation (a notification lost on a
    /// silently dead LISTEN link, or a change whose commit this node could not confirm),
    /// and refresh the bind states the API shows.
    func tick() async throws {
        let version = try await store.version()
        let moved = reconciledVersion.withLock { $0 != version }
        let retry = bindRetries.withLock { $0.due() }
        if dirty.exchange(false, ordering: .relaxed) || moved || retry { requestReconcile() }
        let binds = try await store.binds(window: Membership.liveWindow)
        view.withLock { $0 = binds }
    }

    /// The database was not reached: drop the LISTEN link too (its peer may have vanished
    /// without a word), so that it reconnects, and reconciles, as soon as it can.
    func linkLost() {
        listenLink.withLock { $0 }?.closeNow()
    }

    private func listen() async {
        var delay: Duration = .milliseconds(100)
        var reported = false
        while !Task.isCancelled {
            do {
                let connection = try await database.connect()
                listenLink.withLock { $0 = connection }
                defer {
                    listenLink.withLock { $0 = nil }
                    connection.closeNow()
                }
                try await connection.listen(on: ConfigChange.channel) { notifications in
                    if reported { logger.notice("cluster database reachable again, reconciling") }
                    reported = false
                    delay = .milliseconds(100)
                    requestReconcile()
                    for try await notification in notifications {
                        queue.yield(.notification(notification.payload))
                    }
                }
            } catch {
                if !reported && !Task.isCancelled {
                    logger.warning("cluster database link lost; relaying goes on with the configuration held",
                                   metadata: ["reason": "\(Database.reason(error))"])
                    reported = true
                }
            }
            // At most a second between tries, so a returning database is noticed at once.
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(1))
        }
    }

    private func consume() async {
        for await item in work {
            switch item {
            case .reconcile:
                reconcileQueued.store(false, ordering: .relaxed)
                await applyUnlessHandingOff { await self.reconcile() }
            case .notification(let payload):
                await applyUnlessHandingOff { await self.apply(payload) }
            }
        }
    }

    /// Runs `change` unless the gateway is handing off to a successor process (which
    /// reconciles on its own once it serves); a handoff that fails leaves a reconciliation
    /// owed, so that what arrived meanwhile is applied.
    private func applyUnlessHandingOff(_ change: () async -> Void) async {
        if await gateway.unlessHandingOff(change) == nil { dirty.store(true, ordering: .relaxed) }
    }

    /// Queues a reconciliation unless one is queued already.
    func requestReconcile() {
        if !reconcileQueued.exchange(true, ordering: .relaxed) { queue.yield(.reconcile) }
    }

    private func apply(_ payload: String) async {
        guard let (change, origin) = ConfigChange.parse(payload) else {
            logger.debug("unknown cluster change, reconciling", metadata: ["payload": "\(payload)"])
            return await reconcile()
        }
        // The node that made the change has applied it already.
        guard origin != self.origin else { return }
        logger.debug("cluster change", metadata: ["change": "\(change)", "origin": "\(origin)"])
        switch change {
        case .listenerRemoved(let id, let closeSessions):
            guard !isInFlight(listener: id) else { return }
            forget(listener: id)
            do {
                try await gateway.removingListener(id, closeSessions: closeSessions).value
            } catch where error.status == 404 {
                // Never bound here (its bind failed), or gone already.
            } catch {
                logger.warning("cluster listener not stopped", metadata: ["listener": "\(id)", "reason": "\(error.detail)"])
                dirty.store(true, ordering: .relaxed)
            }
        case .mediatorRemoved(let name):
            guard !isInFlight(mediator: name) else { return }
            // A hop here that holds it (its splice raced the deletion) keeps it until it
            // ends; nothing new can splice it.
            gateway.retireMediator(name)
        case .listenerAdded, .mediatorAdded:
            await reconcile()
        }
    }

    private func isInFlight(listener id: ListenerID) -> Bool {
        inFlight.withLock { $0.listeners.contains(id) }
    }

    private func isInFlight(mediator name: MediatorName) -> Bool {
        inFlight.withLock { $0.mediators.contains(name) }
    }
}
