import Foundation
import NIOCore
import SpliceCore
import SpliceIO
import Synchronization

/// Why a handoff was refused; nothing was changed.
public struct HandoffRefused: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The data plane's side of a handoff (issue 15). The predecessor checks
/// (`handoffBlocker`), freezes (`freezeForHandoff`) and then either lets go
/// (`relinquishAfterHandoff`) or resumes (`resumeAfterHandoff`); the successor adopts
/// (`adoptHandoff`). Blocking calls: for the handoff's own thread, never an event loop.
///
/// What moves: listeners (their sockets, ids, specs and figures), registered mediators,
/// the id sources, and sessions with client and server connected, with their hops (TCP and
/// exec mediators) and splits (no EOF half passed on, no reconfiguration under way). A live
/// capture does not move: its file is ended once the successor has acknowledged
/// (`endCapturesAfterHandoff`), and its reader asks the successor for a new one.
/// Anything else refuses the handoff before anything is stopped (`Session.handoffBlocker`).
extension Gateway {
    /// Whether a handoff is under way: the admin API refuses changes meanwhile.
    public var handoffUnderway: Bool { handoffHold.withLock { $0 != nil } }

    /// How long a handoff waits, listeners paused, for sessions to settle (a dial, templates,
    /// an EOF being passed on: `Session.handoffReadiness`) before it is refused.
    static let handoffSettleWait: Duration = .seconds(5)

    /// How often a session still settling is looked at again, on its loop.
    static let handoffSettleRetry: TimeAmount = .milliseconds(2)

    /// The most bytes one session may hold for a handoff (the payload of its frame: queued
    /// output, hop and split legs' queues, held replica output).
    public static let handoffMaxSessionBytes = 64 << 20

    /// Why the gateway cannot be handed over now, or nil if it can (nothing is stopped).
    /// A session that is settling does not count here: it is waited for.
    public func handoffBlocker() -> String? {
        guard accepting.load(ordering: .relaxed) else { return "the gateway is shutting down" }
        return onEachSession(default: nil) { $0.handoffBlocker(allowSettling: true) }.lazy.compactMap { $0 }.first
    }

    /// Freezes one session on its loop as soon as it has settled: one still dialing, applying
    /// templates or passing an EOF on is looked at again every `handoffSettleRetry` until
    /// `attempt` ends (its deadline passes, or another session refused the handoff). Each
    /// session is frozen on its own once settled (the frozen ones wait for the rest, still
    /// and bounded), so that churn, which never lets all sessions be settled at one instant,
    /// cannot keep a handoff from happening.
    private func freeze(_ record: SessionRecord, _ attempt: FreezeAttempt) -> EventLoopFuture<FreezeOutcome> {
        record.withSession { [self] session -> EventLoopFuture<FreezeOutcome> in
            if let frozen = session.freezeForHandoff() {
                let fds = frozen.fds
                return session.eventLoop.makeSucceededFuture(
                    .frozen(HandoffSession(state: frozen.state, clientFD: fds[0], serverFD: fds[1],
                                           legFDs: Array(fds[2...]))))
            }
            let waiting: String
            switch session.handoffReadiness() {
            case .gone: return session.eventLoop.makeSucceededFuture(.gone)
            case .blocked(let reason):
                attempt.refuse(reason)
                return session.eventLoop.makeSucceededFuture(.blocked(reason))
            case .settling(let reason): waiting = reason
            case .ready: waiting = "session \(record.id) could not be suspended"
            }
            guard attempt.refusal == nil else { return session.eventLoop.makeSucceededFuture(.blocked(waiting)) }
            guard ContinuousClock.now < attempt.deadline else {
                let reason = "\(waiting) (waited \(Self.handoffSettleWait) for it, the listeners paused)"
                attempt.refuse(reason)
                return session.eventLoop.makeSucceededFuture(.blocked(reason))
            }
            return session.eventLoop.flatScheduleTask(in: Self.handoffSettleRetry) {
                self.freeze(record, attempt)
            }.futureResult
        }.recover { _ in .gone }
    }

    /// `body`'s answer for every live session, each asked on its loop (`absent` for one
    /// that ended meanwhile).
    private func onEachSession<T: Sendable>(default absent: T, _ body: @escaping @Sendable (Session) -> T) -> [T] {
        let asks = registry.records().map { record in
            record.withSession { session in session.eventLoop.makeSucceededFuture(body(session)) }
                .recover { _ in absent }
        }
        return (try? wait(EventLoopFuture.whenAllSucceed(asks, on: group.any()))) ?? []
    }

    /// Stops accepting, freezes every session (nothing read, nothing written) and returns
    /// what to hand over, with the sessions' and listeners' own descriptors: they stay open,
    /// their numbers pinned, until `relinquishAfterHandoff` closes them or
    /// `resumeAfterHandoff` serves them again (see `Session.freezeForHandoff`). Throws, with
    /// everything resumed, if something cannot move.
    public func freezeForHandoff() throws(HandoffRefused) -> HandoffExport {
        let started = handoffHold.withLock { hold -> Bool in
            guard hold == nil else { return false }
            hold = HandoffHold(records: [], listeners: [])
            return true
        }
        guard started else { throw HandoffRefused("another handoff is under way") }
        if let reason = handoffBlocker() {
            handoffHold.withLock { $0 = nil }
            throw HandoffRefused(reason)
        }
        // A listener or mediator change under way ends (saved) before anything is read.
        guard configChanges.close(waitingUntil: .now + Self.handoffSettleWait) else {
            configChanges.open()
            handoffHold.withLock { $0 = nil }
            throw HandoffRefused("a listener or mediator change is under way (being saved); try again once it is done")
        }
        let listeners = listenerTable.withLock { Array($0.values) }.sorted { $0.id < $1.id }
        try? wait(EventLoopFuture.andAllComplete(listeners.map { $0.relaySocket.pause() }, on: group.any()))
        // Every client accepted before the pause has its session now: freeze them all, each
        // once it has settled.
        let records = registry.records()
        let attempt = FreezeAttempt(deadline: .now + Self.handoffSettleWait)
        let freezes = records.map { freeze($0, attempt) }
        let outcomes = (try? wait(EventLoopFuture.whenAllSucceed(freezes, on: group.any()))) ?? []
        var sessions: [HandoffSession] = []
        var frozenRecords: [SessionRecord] = []
        var blockers: [String] = []
        for (record, outcome) in zip(records, outcomes) {
            switch outcome {
            case .frozen(let session):
                sessions.append(session)
                frozenRecords.append(record)
            case .blocked(let reason): blockers.append(reason)
            case .gone: break
            }
        }
        handoffHold.withLock { $0 = HandoffHold(records: frozenRecords, listeners: listeners) }
        if outcomes.count != records.count || !blockers.isEmpty {
            resumeAfterHandoff()
            throw HandoffRefused(attempt.refusal ?? blockers.first ?? "a session could not be frozen")
        }
        let numbers = registry.nextNumbers
        let counters = HandoffCounters(
            nextSession: numbers.session, nextHop: numbers.hop, nextSplit: numbers.split,
            nextListener: nextListenerNumber, nextCapture: nextCaptureNumberPeek)
        // The listeners' own descriptors, paused, as the sessions' are frozen: nothing closes
        // a listener while the hold is set (`removingListener`), and shutdown waits for the
        // handoff to finish.
        let handed = listeners.map { listener in
            HandoffListener(state: HandoffListenerState(
                id: listener.id, spec: listener.spec, createdAt: listener.createdAt,
                totalSessions: listener.stats.totalSessions, upstreamFailures: listener.stats.failedDials,
                rejectedSessions: listener.stats.rejectedSessions), fd: listener.relaySocket.descriptor)
        }
        return HandoffExport(mediators: registeredMediators().map(\.spec), listeners: handed, sessions: sessions,
                             counters: counters)
    }

    /// The successor failed before acknowledging: every frozen session reads and writes
    /// again, the listeners accept again.
    public func resumeAfterHandoff() {
        guard let hold = handoffHold.withLock({ $0 }) else { return }
        onEach(hold.records) { $0.thawAfterHandoff() }
        hold.listeners.forEach { $0.relaySocket.resume() }
        handoffHold.withLock { $0 = nil }
        configChanges.open()
    }

    /// The successor has acknowledged: every live capture's file ends here, with its
    /// statistics blocks (at a block boundary, so the reader holds a complete pcapng of the
    /// bytes relayed before the freeze). The sessions record nothing more in this process.
    /// Before `relinquishAfterHandoff`, while the admin API still serves its last answers.
    public func endCapturesAfterHandoff() {
        guard let hold = handoffHold.withLock({ $0 }) else { return }
        onEach(hold.records) { $0.endCaptureAfterHandoff() }
        hold.listeners.forEach { $0.captures.closeAll() }
    }

    /// The successor has acknowledged: close our copies of the descriptors without touching
    /// the connections. The gateway stays marked as handing off (its process exits next).
    public func relinquishAfterHandoff() {
        guard let hold = handoffHold.withLock({ $0 }) else { return }
        onEach(hold.records) { $0.relinquishAfterHandoff() }
        let closing = listenerTable.withLock { table in
            defer { table.removeAll() }
            return Array(table.values)
        }
        try? wait(EventLoopFuture.andAllComplete(closing.map { $0.relaySocket.close() }, on: group.any()))
    }

    /// Takes over what a predecessor handed on: mediators, id sources, listeners and
    /// sessions (each on the next loop), all held until `startAdopted` (the successor
    /// acknowledges first: until then nothing is accepted, read or written, so that a
    /// successor that dies leaves the predecessor every byte). Returns what could not be
    /// taken over (each already closed), for the log.
    public func adoptHandoff(mediators specs: [MediatorSpec], listeners handed: [HandoffListener],
                             sessions: [HandoffSession], counters: HandoffCounters) -> [String] {
        var problems: [String] = []
        handoffHold.withLock { $0 = HandoffHold(records: [], listeners: []) }
        skipListenerIDs(below: counters.nextListener)
        registry.skipNumbers(session: counters.nextSession, hop: counters.nextHop, split: counters.nextSplit)
        skipCaptureNumbers(below: counters.nextCapture)
        for spec in specs {
            do {
                try registerMediator(spec)
            } catch {
                problems.append("mediator \(spec.name): \(error.detail)")
            }
        }
        for listener in handed {
            do {
                try adoptListener(listener)
            } catch {
                problems.append("listener \(listener.state.id): \(error.detail)")
            }
        }
        let adoptions = sessions.map { handed -> EventLoopFuture<Adoption> in
            guard let listener = listenerTable.withLock({ $0[handed.state.listener] }) else {
                handed.fds.forEach { close($0) }
                return group.any().makeSucceededFuture(.failed("session \(handed.state.id): its listener did not come over"))
            }
            let loop = group.nextLoop()
            return loop.submit { () -> Adoption in
                let client = RelaySocket(tcp: handed.clientFD, loop: loop)
                let server = RelaySocket(tcp: handed.serverFD, loop: loop)
                guard let client, let server else {
                    // Quietly: the predecessor still serves the connections (a reset's
                    // SO_LINGER would stay on the shared socket).
                    client?.relinquish()
                    server?.relinquish()
                    handed.legFDs.forEach { close($0) }
                    return .failed("session \(handed.state.id): its sockets could not be polled")
                }
                let state = handed.state
                let record = SessionRecord(id: state.id, listener: state.listener, client: state.client,
                                           server: state.server, eventLoop: loop, openedAt: state.openedAt,
                                           delivered: state.bytes)
                let session = Session(record: record, context: listener.context, loop: loop)
                record.attach(session)
                do throws(APIError) {
                    try session.adopt(client: client, server: server, legFDs: handed.legFDs, state: state)
                } catch {
                    record.release()
                    client.relinquish()
                    server.relinquish()
                    return .failed("session \(state.id): \(error.detail)")
                }
                if let idle = listener.spec.idleTimeoutMs {
                    IdleWatch.start(session, timeout: .milliseconds(Int64(idle)))
                }
                return .adopted(record)
            }
        }
        let outcomes = (try? wait(EventLoopFuture.whenAllSucceed(adoptions, on: group.any()))) ?? []
        var records: [SessionRecord] = []
        for outcome in outcomes {
            switch outcome {
            case .adopted(let record): records.append(record)
            case .failed(let problem): problems.append(problem)
            }
        }
        let listeners = listenerTable.withLock { Array($0.values) }
        handoffHold.withLock { $0 = HandoffHold(records: records, listeners: listeners) }
        return problems
    }

    /// The handoff is acknowledged: the adopted sessions write what the predecessor had
    /// queued and read on, the listeners accept, and the event stream says
    /// `gateway.handoff` (kept for streams opened later).
    public func startAdopted(from predecessor: Int32) {
        guard let hold = handoffHold.withLock({ $0 }) else { return }
        resumeAfterHandoff()
        logger.notice("took over from the previous gateway process", metadata: [
            "sessions": "\(hold.records.count)", "listeners": "\(hold.listeners.count)", "from_pid": "\(predecessor)",
        ])
        events.publishRetained(.handoff(sessions: hold.records.count, listeners: hold.listeners.count, from: predecessor))
    }

    /// Runs `body` on each record's session, on its loop; returns once all have run.
    private func onEach(_ records: [SessionRecord], _ body: @escaping @Sendable (Session) -> Void) {
        let runs = records.map { record in
            record.withSession { session in
                body(session)
                return session.eventLoop.makeSucceededVoidFuture()
            }.recover { _ in }
        }
        try? wait(EventLoopFuture.andAllComplete(runs, on: group.any()))
    }

    private func adoptListener(_ handed: HandoffListener) throws(APIError) {
        let state = handed.state
        let held: [MediatorName]
        do {
            held = try holdTemplateMediators(state.spec)
        } catch {
            close(handed.fd)
            throw error
        }
        let adopted = Listener.adopt(handed.fd, id: state.id, spec: state.spec, createdAt: state.createdAt,
                                     group: group, registry: registry, mediators: mediators, logger: logger,
                                     budget: budget, metrics: metrics, events: events)
        do {
            let listener = try wait(adopted)
            listener.stats.continueFrom(total: state.totalSessions, upstreamFailures: state.upstreamFailures,
                                        rejected: state.rejectedSessions)
            listenerTable.withLock { $0[state.id] = listener }
        } catch {
            held.forEach(mediators.releaseTemplate)
            throw error
        }
    }
}

/// What a handoff under way holds: the frozen sessions' records and the paused listeners.
struct HandoffHold: Sendable {
    var records: [SessionRecord]
    var listeners: [Listener]
}

/// One handed session's adoption.
private enum Adoption: Sendable {
    case adopted(SessionRecord)
    case failed(String)
}

/// One freeze of every session: its deadline, and why a session refused it, if one did
/// (the others stop waiting then).
private final class FreezeAttempt: Sendable {
    let deadline: ContinuousClock.Instant
    private let firstRefusal = Mutex<String?>(nil)

    init(deadline: ContinuousClock.Instant) {
        self.deadline = deadline
    }

    /// The reason the handoff is refused for (the first one given).
    var refusal: String? { firstRefusal.withLock { $0 } }

    func refuse(_ reason: String) {
        firstRefusal.withLock { if $0 == nil { $0 = reason } }
    }
}

/// One session's answer to the freeze.
private enum FreezeOutcome: Sendable {
    case frozen(HandoffSession)
    case blocked(String)
    /// Ended meanwhile: nothing to move.
    case gone
}
