import SpliceCore

/// A session's lifecycle as a value: what happened goes in, what the session must do comes
/// out (the shape of `NIOAsyncWriter`'s and swift-nio-ssh's state machines).
///
/// It owns no socket and does no I/O. Every decision about the session's ends, failures,
/// EOFs and reconfigurations is made here from the facts an event comes with, so each can
/// be tested on its own (SessionMachineTests); `Session` gathers the facts, feeds the event
/// and carries out the action returned.
struct SessionMachine {
    /// Where the session is in its life.
    enum Phase: Equatable {
        /// Accepted; the upstream is being dialed.
        case connecting
        /// Connected; relaying once the listener's templates are in.
        case open
        /// Ended for the reason given (the first one reported wins).
        case ended(CloseReason)
    }

    /// What kind of port an event comes from, with what the decision needs to know of it.
    enum PortKind: Equatable {
        case client
        case server
        /// A mediator's leg; `draining` while its removal takes effect.
        case hop(draining: Bool)
        /// A split recipient.
        case split
    }

    private(set) var phase: Phase = .connecting
    /// False until the listener's templates are in, so that they all start at offset 0.
    private(set) var readsEnabled = false
    /// An EOF has been passed on to one of the endpoints.
    private(set) var halfClosed = false
    /// Directions whose EOF reached the receiving endpoint after every byte.
    var finished: Set<Direction> { Set(Direction.allCases.filter { finishedMask & Self.bit($0) != 0 }) }
    /// `finished` as bits: every session that completes finishes both directions, and a
    /// set allocated its storage on the first insert.
    private var finishedMask: UInt8 = 0
    /// Directions with a splice, removal or split still taking effect (one at a time each).
    private(set) var reconfiguring: Set<Direction> = []

    var isEnding: Bool {
        if case .ended = phase { return true }
        return false
    }

    /// The state the API shows.
    var state: SessionState {
        switch phase {
        case .connecting: .connecting
        case .open: halfClosed ? .halfClosed : .open
        case .ended: .closing
        }
    }

    // MARK: connecting

    /// What to do with a server connection that has just opened.
    enum ConnectAction: Equatable {
        /// The session ended while dialing: close the new socket.
        case discard
        /// Wire the paths and splice the listener's templates.
        case applyTemplates
        /// Wire the paths, then end: the server hung up before it was wired in.
        case end(CloseReason)
    }

    mutating func serverConnected(socketOpen: Bool) -> ConnectAction {
        guard phase == .connecting else { return .discard }
        phase = .open
        return socketOpen ? .applyTemplates : .end(.serverError)
    }

    /// The upstream could not be reached: the reason to end with, or nil if the session
    /// has already ended.
    func upstreamFailed() -> CloseReason? {
        phase == .connecting ? .upstreamUnreachable : nil
    }

    /// A session taken over from a predecessor process, open and relaying, with the
    /// directions it had finished (nothing under way: no EOF half passed on).
    mutating func adopted(finished: Set<Direction> = [], halfClosed: Bool = false) {
        phase = .open
        readsEnabled = true
        finishedMask = finished.reduce(0) { $0 | Self.bit($1) }
        self.halfClosed = halfClosed || !finished.isEmpty
    }

    /// The templates are in: reads may start. False if the session ended meanwhile.
    mutating func templatesApplied() -> Bool {
        guard phase == .open else { return false }
        readsEnabled = true
        return true
    }

    // MARK: EOF

    /// What the link a port's reads feed is doing when its input ends.
    enum OutLink: Equatable {
        /// Unwired (a split recipient, or the session is being detached).
        case none
        /// Paused while a drain takes effect: it keeps the EOF for when its direct path is back.
        case paused
        case flowing
    }

    /// The facts of a port whose peer sent EOF.
    struct InputClosed: Equatable {
        var port: PortKind
        /// We have half-closed the port's output (for a hop: its input, as a drain starts).
        var outputClosing = false
        /// The client has sent EOF (read off the client port).
        var clientSentEOF = false
        /// A failover replica is ready to take the server's place.
        var hasReplica = false
        var outLink: OutLink = .flowing
    }

    enum InputClosedAction: Equatable {
        /// A drained mediator ended its output: its leg can be unspliced.
        case finishDrain
        /// A mediator still being fed ended its output: it exited or failed.
        case mediatorFailed(String)
        /// The server hung up while the client still talks: a replica takes over.
        case promoteReplica(String)
        /// Pass the EOF over the port's out-link once everything queued is written.
        case propagateEOF
        /// Nothing now (no link to pass it on, or one paused that keeps it).
        case hold
    }

    func inputClosed(_ facts: InputClosed) -> InputClosedAction {
        guard !isEnding else { return .hold }
        if case .hop(let draining) = facts.port {
            if draining { return .finishDrain }
            if !facts.outputClosing { return .mediatorFailed("closed its output while still being fed") }
        }
        if facts.port == .server, !facts.clientSentEOF, facts.hasReplica {
            return .promoteReplica("server sent EOF while the client had not closed its side")
        }
        return facts.outLink == .flowing ? .propagateEOF : .hold
    }

    /// An EOF is on its way to an endpoint: the session is half-closed.
    mutating func eofSentToEndpoint() {
        halfClosed = true
    }

    /// An endpoint's output was half-closed after its last byte: the direction is finished.
    /// Returns the reason to end with once both are.
    mutating func endpointFinished(_ direction: Direction) -> CloseReason? {
        guard !isEnding else { return nil }
        finishedMask |= Self.bit(direction)
        return finishedMask == Self.bit(.clientToServer) | Self.bit(.serverToClient) ? .completed : nil
    }

    private static func bit(_ direction: Direction) -> UInt8 {
        direction == .clientToServer ? 1 : 2
    }

    // MARK: failures

    /// What a broken port (an I/O error, or closed without a clean EOF both ways) leads to.
    enum FailureAction: Equatable {
        case end(CloseReason)
        case promoteReplica(String)
        /// The hop's `on_failure` policy decides.
        case mediatorFailed(String)
        case dropSplit(String)
        /// The session is ending, or the port closed cleanly: nothing to act on.
        case ignore
    }

    /// - Parameters:
    ///   - cleanClose: the port had both received EOF and half-closed its output, so its
    ///     closing is the end of a finished exchange, not a failure.
    /// `why` is worded only when an action carries it: a client's reset, the commonest
    /// failure, ends the session without it.
    func portBroke(_ port: PortKind, _ why: @autoclosure () -> String, cleanClose: Bool = false,
                   hasReplica: Bool) -> FailureAction {
        // A socket the session itself closed as it ended reports its unfinished half-close
        // as failed: nothing to act on.
        guard !isEnding, !cleanClose else { return .ignore }
        switch port {
        case .client: return .end(.clientError)
        case .server: return hasReplica ? .promoteReplica("server failed: \(why())") : .end(.serverError)
        case .hop: return .mediatorFailed(why())
        case .split: return .dropSplit("recipient failed: \(why())")
        }
    }

    // MARK: ending

    /// How the session closes one of its ports as it ends.
    enum CloseMode: Equatable {
        /// After what is queued is written: a split recipient gets its whole copy of a
        /// session that completed.
        case afterFlush
        /// At once with a reset: the other side failed mid-stream, and a FIN would make
        /// what this endpoint got look complete (HAProxy passes an abort on as a reset too).
        case reset
        case now
    }

    /// Ends the session; returns false if it had already ended (the first reason stays).
    mutating func end(_ reason: CloseReason) -> Bool {
        guard !isEnding else { return false }
        phase = .ended(reason)
        return true
    }

    /// How to close a port of a session that ended for `reason`.
    static func closeMode(of port: PortKind, endingFor reason: CloseReason) -> CloseMode {
        switch port {
        case .split where reason == .completed: .afterFlush
        case .client, .server: reason.cutsTheStream ? .reset : .now
        default: .now
        }
    }

    // MARK: reconfiguration

    /// Why a splice, removal or split of `directions` is refused now, or nil to go ahead.
    ///
    /// - Parameter eofSeen: whether a direction's sender has sent EOF (nothing more to mediate).
    func refusal(_ directions: [Direction], session id: SessionID, eofSeen: (Direction) -> Bool) -> String? {
        switch phase {
        case .connecting: return "session \(id) is still connecting"
        case .ended: return "session \(id) is closing"
        case .open:
            for direction in directions {
                if let reason = busyReason(direction, eofSeen: eofSeen(direction)) { return reason }
            }
            return nil
        }
    }

    /// Why `direction` cannot be reconfigured now, or nil if it can.
    func busyReason(_ direction: Direction, eofSeen: Bool) -> String? {
        if reconfiguring.contains(direction) {
            return "another splice, removal or split of \(direction.rawValue) is still taking effect"
        }
        return eofSeen ? "\(direction.rawValue) has reached EOF" : nil
    }

    /// Marks directions as being reconfigured (until `endReconfiguring`).
    mutating func beginReconfiguring<Directions: Sequence<Direction>>(_ directions: Directions) {
        reconfiguring.formUnion(directions)
    }

    /// A reconfiguration of `directions` took effect or was abandoned.
    mutating func endReconfiguring<Directions: Sequence<Direction>>(_ directions: Directions) {
        reconfiguring.subtract(directions)
    }
}
