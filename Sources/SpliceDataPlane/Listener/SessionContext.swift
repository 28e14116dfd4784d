import Logging
import SpliceCore

/// What every session of one listener shares: where to dial, what to splice in
/// at the start, and the gateway services a session reports to.
///
/// One object per listener, referenced by each of its sessions: held per session,
/// these were ~150 B of every idle session's memory.
final class SessionContext: Sendable {
    /// The listener's counters and limits.
    let stats: ListenerStats
    /// The gateway's live sessions and id source.
    let registry: SessionRegistry
    /// Where sessions are relayed to.
    let upstream: Upstream
    /// Named mediators that hops and templates refer to.
    let mediators: MediatorRegistry
    /// Where session events are published.
    let events: EventHub
    /// The listener's logger; a session adds its own metadata when it logs.
    let logger: Logger
    /// Hops and splits every new session gets at offset 0.
    let templates: (mediators: [HopRequest], splits: [SplitRequest])
    /// Captures recording every session of the listener.
    let captures: ListenerCaptures

    /// A context from its parts.
    init(stats: ListenerStats, registry: SessionRegistry, upstream: Upstream, mediators: MediatorRegistry,
         events: EventHub, logger: Logger, templates: (mediators: [HopRequest], splits: [SplitRequest]),
         captures: ListenerCaptures = ListenerCaptures()) {
        self.stats = stats
        self.registry = registry
        self.upstream = upstream
        self.mediators = mediators
        self.events = events
        self.logger = logger
        self.templates = templates
        self.captures = captures
    }
}
