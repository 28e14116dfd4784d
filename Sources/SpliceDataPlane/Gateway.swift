import Logging
import NIOCore
import SpliceCore
import SpliceIO
import Synchronization

/// The data plane as the control plane sees it: listeners, sessions, and what can be done
/// to them. Thread-safe. An operation that goes through the event loops comes twice: named
/// as under way (`splicing`, `removingHop`, …) it returns at once with a `GatewayFuture`,
/// which the admin API answers through; plain (`splice`, `removeHop`, …) it blocks until
/// done, for start-up and tests, and must not be called on an event loop or a server thread.
public final class Gateway: Sendable {
    let group: RelayLoopGroup
    let logger: Logger
    let registry: SessionRegistry
    let mediators = MediatorRegistry()
    let listenerTable = Mutex<[ListenerID: Listener]>([:])
    private let nextListener = Atomic<UInt64>(1)
    private let nextCapture = Atomic<UInt64>(1)
    /// Whether a splice may name a mediator by address instead of a registered name.
    public let allowAdHocMediators: Bool
    /// Prometheus metrics of this gateway (`/metrics`).
    public let metrics: GatewayMetrics
    /// What happens, as it happens (`/api/v1/events`).
    public let events = EventHub()
    /// The gateway-wide session limit.
    let budget: SessionBudget
    /// Cleared by `stopAccepting()`: no listener accepts or may be added any more.
    let accepting = Atomic<Bool>(true)
    /// Set while a handoff to a successor process is under way (see Gateway+Handoff).
    let handoffHold = Mutex<HandoffHold?>(nil)
    /// Listener and mediator changes against a handoff (see `ConfigChangeGate`).
    let configChanges = ConfigChangeGate()

    /// A gateway running its sessions on `group`, with at most `maxSessions` live sessions
    /// over all listeners (nil: no limit). Session ids count up from `firstSessionNumber`
    /// (`s1` alone; a cluster node starts at its own base).
    public init(group: RelayLoopGroup, logger: Logger, allowAdHocMediators: Bool = true,
                maxSessions: Int? = nil, metrics: GatewayMetrics = GatewayMetrics(),
                firstSessionNumber: UInt64 = 1) {
        self.registry = SessionRegistry(firstSessionNumber: firstSessionNumber)
        self.group = group
        self.logger = logger
        self.allowAdHocMediators = allowAdHocMediators
        self.metrics = metrics
        self.budget = SessionBudget(limit: maxSessions)
    }


    // MARK: listeners

    /// Binds a new listener; its `listen` in the answer is the bound address. `id` restores
    /// a listener under the id it had before a restart; by default a fresh one is issued.
    /// Blocks until bound: for start-up and tests (the API uses `addingListener`).
    public func addListener(_ spec: ListenerSpec, id restoredID: ListenerID? = nil) throws(APIError) -> ListenerSnapshot {
        try addingListener(spec, id: restoredID).wait()
    }

    /// Starts binding a new listener, as `addListener`; a refusal decided up front (bad
    /// spec, id in use, shutting down) is thrown at once.
    public func addingListener(_ spec: ListenerSpec, id restoredID: ListenerID? = nil)
        throws(APIError) -> GatewayFuture<ListenerSnapshot>
    {
        guard accepting.load(ordering: .relaxed) else { throw .conflict("the gateway is shutting down") }
        // Templates are spliced in order into a session with no hop yet: the i-th finds i hops.
        // A 409 as for a splice past the end of a live stack: the request is well-formed, the
        // stack it would meet refuses it.
        for (index, template) in spec.mediators.enumerated() {
            if let position = template.position, position > index {
                throw .conflict("listener mediator template \(index): position \(position) is past the end of the \(index) template(s) before it")
            }
        }
        if let bad = spec.splits.first(where: { $0.failover && !$0.canBeReplica }) {
            throw .invalid("listener split to \(bad.address): failover needs direction client_to_server and on_slow block")
        }
        if spec.mediators.contains(where: { if case .address = $0.target { true } else { false } }), !allowAdHocMediators {
            throw .invalid("ad-hoc mediator addresses are disabled by the config")
        }
        // A template holds its mediator for the listener's life, as a hop does, so the mediator
        // cannot be unregistered from under the sessions to come.
        let held = try holdTemplateMediators(spec)
        let id: ListenerID
        do {
            id = try restoredID.map { id throws(APIError) in try reserveListenerID(id) }
                ?? ListenerID(number: nextListener.wrappingAdd(1, ordering: .relaxed).oldValue)
        } catch {
            held.forEach(mediators.releaseTemplate)
            throw error
        }
        let issued = restoredID == nil ? id.number : nil
        let bound = Listener.bind(id: id, spec: spec, group: group, registry: registry, mediators: mediators,
                                  logger: logger, budget: budget, metrics: metrics, events: events)
        return GatewayFuture(bound.map { [self] listener in
            listenerTable.withLock { $0[id] = listener }
            events.publish(.listenerAdded(listener.snapshot))
            return listener.snapshot
        }.flatMapErrorThrowing { [self] error in
            held.forEach(mediators.releaseTemplate)
            // A listener that failed to bind takes no id: the number goes back, unless a later
            // one was issued meanwhile.
            if let issued {
                _ = nextListener.compareExchange(expected: issued + 1, desired: issued, ordering: .relaxed)
            }
            throw error
        })
    }

    /// Every listener, in id order.
    public func listeners() -> [ListenerSnapshot] {
        listenerTable.withLock { Array($0.values) }.sorted { $0.id < $1.id }.map(\.snapshot)
    }

    /// One listener.
    public func listener(_ id: ListenerID) throws(APIError) -> ListenerSnapshot {
        try lookUpListener(id).snapshot
    }

    /// Stops a listener accepting; with `closeSessions` its live sessions end too. Blocks:
    /// for tests (the API uses `removingListener`).
    public func removeListener(_ id: ListenerID, closeSessions: Bool) throws(APIError) {
        try removingListener(id, closeSessions: closeSessions).wait()
    }

    /// Starts stopping a listener, as `removeListener`; 404 at once for an unknown one.
    public func removingListener(_ id: ListenerID, closeSessions: Bool) throws(APIError) -> GatewayFuture<Void> {
        // Checked under the handoff's lock: a handoff takes the listeners it found, and their
        // sockets must not close under it.
        let (underway, removed) = handoffHold.withLock { hold -> (Bool, Listener?) in
            guard hold == nil else { return (true, nil) }
            return (false, listenerTable.withLock { $0.removeValue(forKey: id) })
        }
        if underway { throw .conflict("a handoff to a new process is under way; try again once it is over") }
        guard let listener = removed else { throw .notFound("no listener \(id)") }
        let stop = listener.stop()
        let stopped = stop.flatMap { [self] () -> EventLoopFuture<Void> in
            templateMediatorNames(listener.spec).forEach(mediators.releaseTemplate)
            logger.info("listener stopped", metadata: ["listener": "\(id)"])
            events.publish(.listenerRemoved(id))
            guard closeSessions else { return stop.eventLoop.makeSucceededVoidFuture() }
            let kills = registry.records(listener: id).map { record in
                record.withSession { $0.kill(.listenerClosed) }.recover { _ in }
            }
            return EventLoopFuture.andAllComplete(kills, on: group.any())
        }
        // Captures of the listener end with it, after the sessions it closes have ended in them.
        stopped.whenComplete { _ in listener.captures.closeAll() }
        return GatewayFuture(stopped)
    }

    /// The registered mediators a listener's templates name, one entry per template.
    private func templateMediatorNames(_ spec: ListenerSpec) -> [MediatorName] {
        spec.mediators.compactMap { if case .registered(let name) = $0.target { name } else { nil } }
    }

    /// Holds every mediator the templates name; all or none.
    func holdTemplateMediators(_ spec: ListenerSpec) throws(APIError) -> [MediatorName] {
        var held: [MediatorName] = []
        for name in templateMediatorNames(spec) {
            do {
                try mediators.holdForTemplate(name)
            } catch {
                held.forEach(mediators.releaseTemplate)
                throw error
            }
            held.append(name)
        }
        return held
    }

    /// Takes `id` for a restored listener and moves the issuing counter past it.
    private func reserveListenerID(_ id: ListenerID) throws(APIError) -> ListenerID {
        guard listenerTable.withLock({ $0[id] == nil }) else {
            throw .conflict("listener id \(id) is already in use")
        }
        // The largest id leaves no next one to issue (and `+ 1` would trap).
        guard id.number < UInt64.max else { throw .invalid("listener id \(id) is out of range") }
        skipListenerIDs(below: id.number + 1)
        return id
    }

    /// A fresh capture id number.
    func nextCaptureNumber() -> UInt64 {
        nextCapture.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// The number the next capture id will carry (handed to a successor process).
    var nextCaptureNumberPeek: UInt64 { nextCapture.load(ordering: .relaxed) }

    /// Issues no capture id numbered below `number` any more.
    func skipCaptureNumbers(below number: UInt64) {
        nextCapture.raise(to: number)
    }

    /// The number the next new listener's id will carry; saved with the state so that ids
    /// of deleted listeners are not issued again after a restart.
    public var nextListenerNumber: UInt64 { nextListener.load(ordering: .relaxed) }

    /// Issues no listener id numbered below `number` any more.
    public func skipListenerIDs(below number: UInt64) {
        nextListener.raise(to: number)
    }

    func lookUpListener(_ id: ListenerID) throws(APIError) -> Listener {
        guard let listener = listenerTable.withLock({ $0[id] }) else { throw .notFound("no listener \(id)") }
        return listener
    }

    // MARK: sessions

    /// One page of live sessions in id order, optionally of one listener.
    public func sessions(listener: ListenerID? = nil, limit: Int = 100, after cursor: SessionID? = nil)
        -> (sessions: [SessionSnapshot], nextCursor: SessionID?)
    {
        let page = registry.page(listener: listener, limit: limit, after: cursor)
        return (page.items.map(\.snapshot), page.next)
    }

    /// One live session.
    public func session(_ id: SessionID) throws(APIError) -> SessionSnapshot {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        return record.snapshot
    }

    /// Ends a session at once, closing both sides; returns when its sockets are closed.
    /// Blocks: for tests (the API uses `closingSession`).
    public func closeSession(_ id: SessionID) throws(APIError) {
        try closingSession(id).wait()
    }

    /// Starts ending a session, as `closeSession`; 404 at once for an unknown one.
    public func closingSession(_ id: SessionID) throws(APIError) -> GatewayFuture<Void> {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        return GatewayFuture(record.changingSession { $0.kill(.killed) })
    }

    /// How many sessions are live.
    public var sessionCount: Int { registry.count }

    // MARK: operations

    /// Closes every listener's socket so that no client is accepted any more, and refuses new
    /// listeners; live sessions go on. The listeners stay listed (the first step of a
    /// graceful shutdown).
    public func stopAccepting() {
        accepting.store(false, ordering: .relaxed)
        let listeners = listenerTable.withLock { Array($0.values) }
        let stops = listeners.map { $0.stop() }
        try? wait(EventLoopFuture.andAllComplete(stops, on: group.any()))
        logger.info("stopped accepting", metadata: ["listeners": "\(listeners.count)"])
    }

    /// The metrics in the Prometheus text exposition format, derived values brought up to date.
    public func metricsText() -> String {
        let listeners = listenerTable.withLock { Array($0.keys) }
        metrics.refresh(live: registry.records(), listeners: listeners)
        return metrics.registry.emitToString()
    }

    // MARK: shutdown

    /// Stops every listener and ends every session.
    public func shutdown() {
        let listeners = listenerTable.withLock { table in
            defer { table.removeAll() }
            return Array(table.values)
        }
        for listener in listeners {
            try? wait(listener.stop())
        }
        let kills = registry.records().map { record in
            record.withSession { $0.kill(.shutdown) }.recover { _ in }
        }
        try? wait(EventLoopFuture.andAllComplete(kills, on: group.any()))
    }

    /// Blocks on a data-plane future, turning its failure into the API error to report
    /// (start-up and shutdown only, on the main thread).
    func wait<T: Sendable>(_ future: EventLoopFuture<T>) throws(APIError) -> T {
        try GatewayFuture(future).wait()
    }
}
