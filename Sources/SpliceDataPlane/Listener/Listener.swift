import Foundation
import Logging
import NIOCore
import SpliceCore
import SpliceIO

/// A bound listener: accepts clients and starts a `Session` for each.
final class Listener: Sendable {
    /// Listener id.
    let id: ListenerID
    /// The spec, with `listen` holding the address actually bound.
    let spec: ListenerSpec
    /// When it started accepting.
    let createdAt: Date
    /// Its counters.
    let stats: ListenerStats
    /// Captures recording its sessions.
    let captures: ListenerCaptures
    private let relay: RelayListener

    private init(id: ListenerID, spec: ListenerSpec, createdAt: Date, context: SessionContext, relay: RelayListener) {
        self.id = id
        self.captures = context.captures
        self.spec = spec
        self.createdAt = createdAt
        self.stats = context.stats
        self.context = context
        self.relay = relay
    }

    /// What its sessions share.
    let context: SessionContext

    /// Binds `spec.listen` and starts accepting; fails with a 409 when the address is taken
    /// and a 422 when it cannot be bound at all.
    static func bind(id: ListenerID, spec: ListenerSpec, group: RelayLoopGroup, registry: SessionRegistry,
                     mediators: MediatorRegistry, logger: Logger, budget: SessionBudget,
                     metrics: GatewayMetrics, events: EventHub) -> EventLoopFuture<Listener> {
        start(id: id, spec: spec, group: group, registry: registry, mediators: mediators, logger: logger,
              budget: budget, metrics: metrics, events: events) { accepted throws(RelayIOError) in
            try RelayListener.bind(host: spec.listen.host, port: spec.listen.port, group: group, accepted: accepted)
        }
    }

    /// Takes a listening socket a predecessor process handed over, as listener `id` created
    /// at `createdAt`, paused until the handoff is acknowledged; takes ownership of `fd`.
    static func adopt(_ fd: Int32, id: ListenerID, spec: ListenerSpec, createdAt: Date, group: RelayLoopGroup,
                      registry: SessionRegistry, mediators: MediatorRegistry, logger: Logger, budget: SessionBudget,
                      metrics: GatewayMetrics, events: EventHub) -> EventLoopFuture<Listener> {
        start(id: id, spec: spec, createdAt: createdAt, group: group, registry: registry, mediators: mediators,
              logger: logger, budget: budget, metrics: metrics, events: events) { accepted throws(RelayIOError) in
            try RelayListener.adopt(fd, group: group, paused: true, accepted: accepted)
        }
    }

    private static func start(
        id: ListenerID, spec: ListenerSpec, createdAt: Date = Date(), group: RelayLoopGroup, registry: SessionRegistry,
        mediators: MediatorRegistry, logger: Logger, budget: SessionBudget, metrics: GatewayMetrics, events: EventHub,
        relayOn: (@escaping @Sendable (RelaySocket, String?) -> Void) throws(RelayIOError) -> RelayListener
    ) -> EventLoopFuture<Listener> {
        let stats = ListenerStats(listener: id, maxSessions: spec.maxSessions, budget: budget, metrics: metrics)
        let upstream = Upstream(address: spec.upstream, connectTimeoutMs: spec.connectTimeoutMs)
        var listenerLogger = logger
        listenerLogger[metadataKey: "listener"] = "\(id)"
        let sessionLogger = listenerLogger
        // One string for every session's initial `server` (it is replaced by the
        // connected address), not one interpolated per session.
        let upstreamText = "\(spec.upstream)"
        let captures = ListenerCaptures()
        let context = SessionContext(stats: stats, registry: registry, upstream: upstream, mediators: mediators,
                                     events: events, logger: sessionLogger, templates: (spec.mediators, spec.splits),
                                     captures: captures)
        let relay: RelayListener
        do {
            relay = try relayOn { socket, client in
                // Over a limit the client is closed at once, and counted.
                guard stats.admit() else {
                    sessionLogger.warning("client rejected: session limit reached", metadata: [
                        "client": "\(client ?? "unknown")",
                    ])
                    socket.close()
                    return
                }
                let record = SessionRecord(id: registry.makeID(), listener: id,
                                           client: client ?? "unknown",
                                           server: upstreamText, eventLoop: socket.loop)
                let session = Session(record: record, context: context, loop: socket.loop)
                record.attach(session)
                session.start(client: socket)
                if let idle = spec.idleTimeoutMs {
                    IdleWatch.start(session, timeout: .milliseconds(Int64(idle)))
                }
            }
        } catch {
            // No listener, so no series for it in /metrics.
            stats.unregisterMetrics()
            return group.any().makeFailedFuture(Self.bindError(error, spec.listen))
        }
        var bound = spec
        if let port = relay.localAddress.port {
            bound.listen = HostPort(host: relay.localAddress.ipAddress ?? spec.listen.host, port: port)
        }
        sessionLogger.info("listener started", metadata: ["listen": "\(bound.listen)", "upstream": "\(spec.upstream)"])
        return group.any().makeSucceededFuture(Listener(id: id, spec: bound, createdAt: createdAt, context: context,
                                                        relay: relay))
    }

    private static func bindError(_ error: any Error, _ address: HostPort) -> APIError {
        if let error = error as? RelayIOError, error.errnoCode == EADDRINUSE {
            return .conflict("listen address \(address) is already in use")
        }
        return .invalid("cannot bind listen address \(address): \(error)")
    }

    /// Stops accepting; live sessions are left alone.
    func stop() -> EventLoopFuture<Void> {
        relay.close()
    }

    /// The accepting socket (a handoff pauses it, passes it on, and resumes or closes it).
    var relaySocket: RelayListener { relay }

    /// A view for the API.
    var snapshot: ListenerSnapshot {
        ListenerSnapshot(id: id, spec: spec, createdAt: createdAt, activeSessions: stats.activeSessions,
                         totalSessions: stats.totalSessions, upstreamFailures: stats.failedDials,
                         rejectedSessions: stats.rejectedSessions)
    }
}

/// Why an accepted client was closed at once: a session limit was reached.
struct SessionLimitReached: Error {}
