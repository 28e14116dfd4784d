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

    private init(id: ListenerID, spec: ListenerSpec, stats: ListenerStats, captures: ListenerCaptures,
                 relay: RelayListener) {
        self.id = id
        self.captures = captures
        self.spec = spec
        self.createdAt = Date()
        self.stats = stats
        self.relay = relay
    }

    /// Binds `spec.listen` and starts accepting; fails with a 409 when the address is taken
    /// and a 422 when it cannot be bound at all.
    static func bind(id: ListenerID, spec: ListenerSpec, group: RelayLoopGroup, registry: SessionRegistry,
                     mediators: MediatorRegistry, logger: Logger, budget: SessionBudget,
                     metrics: GatewayMetrics, events: EventHub) -> EventLoopFuture<Listener> {
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
            relay = try RelayListener.bind(host: spec.listen.host, port: spec.listen.port, group: group) { socket, client in
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
        return group.any().makeSucceededFuture(Listener(id: id, spec: bound, stats: stats, captures: captures, relay: relay))
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

    /// A view for the API.
    var snapshot: ListenerSnapshot {
        ListenerSnapshot(id: id, spec: spec, createdAt: createdAt, activeSessions: stats.activeSessions,
                         totalSessions: stats.totalSessions, upstreamFailures: stats.failedDials,
                         rejectedSessions: stats.rejectedSessions)
    }
}

/// Why an accepted client was closed at once: a session limit was reached.
struct SessionLimitReached: Error {}
