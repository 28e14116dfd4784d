import Foundation
import Logging
import NIOCore
import NIOPosix
import SpliceCore

/// A bound listener: accepts clients and starts a `Session` for each.
final class Listener: Sendable {
    /// Listener id.
    let id: Identifier
    /// The spec, with `listen` holding the address actually bound.
    let spec: ListenerSpec
    /// When it started accepting.
    let createdAt: Date
    /// Its counters.
    let stats: ListenerStats
    private let channel: Channel

    private init(id: Identifier, spec: ListenerSpec, stats: ListenerStats, channel: Channel) {
        self.id = id
        self.spec = spec
        self.createdAt = Date()
        self.stats = stats
        self.channel = channel
    }

    /// Binds `spec.listen` and starts accepting; fails with a 409 when the address is taken
    /// and a 422 when it cannot be bound at all.
    static func bind(id: Identifier, spec: ListenerSpec, group: EventLoopGroup, registry: SessionRegistry,
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
        let context = SessionContext(stats: stats, registry: registry, upstream: upstream, mediators: mediators,
                                     events: events, logger: sessionLogger, templates: (spec.mediators, spec.splits))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = PortHandler()
                    try channel.pipeline.syncOperations.addHandler(handler)
                    // Over a limit the client is closed at once (the bootstrap closes a channel
                    // whose initializer fails) and counted.
                    guard stats.admit() else {
                        sessionLogger.warning("client rejected: session limit reached", metadata: [
                            "client": "\(channel.remoteAddress?.hostPortString ?? "unknown")",
                        ])
                        throw SessionLimitReached()
                    }
                    let record = SessionRecord(id: registry.makeID(), listener: id,
                                               client: channel.remoteAddress?.hostPortString ?? "unknown",
                                               server: upstreamText, eventLoop: channel.eventLoop)
                    let session = Session(record: record, context: context)
                    record.attach(session)
                    session.start(client: channel, handler: handler)
                    if let idle = spec.idleTimeoutMs {
                        IdleWatch.start(session, timeout: .milliseconds(Int64(idle)))
                    }
                }
            }
        return bootstrap.bind(host: spec.listen.host, port: spec.listen.port).flatMapErrorThrowing { error in
            // No listener, so no series for it in /metrics.
            stats.unregisterMetrics()
            throw Self.bindError(error, spec.listen)
        }.map { channel in
            var bound = spec
            if let address = channel.localAddress, let port = address.port {
                bound.listen = HostPort(host: address.ipAddress ?? spec.listen.host, port: port)
            }
            sessionLogger.info("listener started", metadata: ["listen": "\(bound.listen)", "upstream": "\(spec.upstream)"])
            return Listener(id: id, spec: bound, stats: stats, channel: channel)
        }
    }

    private static func bindError(_ error: any Error, _ address: HostPort) -> APIError {
        if let error = error as? IOError, error.errnoCode == EADDRINUSE {
            return .conflict("listen address \(address) is already in use")
        }
        return .invalid("cannot bind listen address \(address): \(error)")
    }

    /// Stops accepting; live sessions are left alone.
    func stop() -> EventLoopFuture<Void> {
        channel.close().recover { _ in }
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
