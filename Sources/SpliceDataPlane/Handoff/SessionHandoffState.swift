import SpliceCore

/// A session's part in a handoff (issue 15) as one value: which side of the exchange it is
/// on and what waits for the exchange to end. Each event is a mutating method that returns
/// what to do; `Session` (Session+Handoff) carries it out on its sockets. `Queued` is what
/// an adopted session has to write first (the bytes the predecessor had queued, per port).
struct SessionHandoffState<Queued> {
    enum Phase {
        /// No handoff concerns the session: it is served as usual.
        case serving
        /// Frozen in the predecessor while its descriptors travel: nothing is read, written
        /// or closed. `deferredEnd` is why it was to end meanwhile (the first reason given).
        case frozen(deferredEnd: CloseReason?)
        /// Taken over in the successor and held until the handoff is acknowledged, with what
        /// it writes first then; `deferredEnd` as for `frozen`.
        case adopted(queued: Queued, deferredEnd: CloseReason?)
        /// Handed to the successor: this process holds nothing of it any more.
        case handedOff
    }

    private(set) var phase: Phase = .serving

    /// Whether nothing may be read, written or closed: frozen, adopted and held, or gone to
    /// the successor.
    var isHeld: Bool {
        switch phase {
        case .serving: false
        case .frozen, .adopted, .handedOff: true
        }
    }

    /// Whether the predecessor has it frozen for a handoff under way.
    var isFrozen: Bool {
        if case .frozen = phase { return true }
        return false
    }

    /// Freezing for a handoff (predecessor): false, and nothing changed, unless serving.
    mutating func freeze() -> Bool {
        switch phase {
        case .serving:
            phase = .frozen(deferredEnd: nil)
            return true
        case .frozen, .adopted, .handedOff:
            return false
        }
    }

    /// Taken over from a predecessor (successor), held with what it writes first.
    mutating func adopt(queued: Queued) {
        switch phase {
        case .serving: phase = .adopted(queued: queued, deferredEnd: nil)
        case .frozen, .adopted, .handedOff: preconditionFailure("only a new session is adopted")
        }
    }

    /// What to do with an end asked for.
    enum EndAction: Equatable {
        /// End now.
        case end
        /// Held: remembered, carried out at the thaw.
        case deferred
        /// The successor has the session: not ours to end.
        case ignore
    }

    /// An end asked for (a timer, a failure, a listener closing, a shutdown).
    mutating func end(_ reason: CloseReason) -> EndAction {
        switch phase {
        case .serving:
            return .end
        case .frozen(let deferred):
            phase = .frozen(deferredEnd: deferred ?? reason)
            return .deferred
        case .adopted(let queued, let deferred):
            phase = .adopted(queued: queued, deferredEnd: deferred ?? reason)
            return .deferred
        case .handedOff:
            return .ignore
        }
    }

    /// What a thaw carries out: the writes an adopted session makes first, then the end
    /// deferred meanwhile, if any.
    struct Thaw {
        var queued: Queued?
        var deferredEnd: CloseReason?
    }

    /// Served again: the predecessor after the handoff failed, the successor once it is
    /// acknowledged. Nil, and nothing changed, unless frozen or adopted.
    mutating func thaw() -> Thaw? {
        switch phase {
        case .frozen(let deferred):
            phase = .serving
            return Thaw(queued: nil, deferredEnd: deferred)
        case .adopted(let queued, let deferred):
            phase = .serving
            return Thaw(queued: queued, deferredEnd: deferred)
        case .serving, .handedOff:
            return nil
        }
    }

    /// Let go of: in the predecessor once the successor has acknowledged, in a successor
    /// that fails before acknowledging (the predecessor keeps it). False, and nothing
    /// changed, unless frozen or adopted. An end deferred meanwhile is the other process's
    /// to decide now.
    mutating func handOff() -> Bool {
        switch phase {
        case .frozen, .adopted:
            phase = .handedOff
            return true
        case .serving, .handedOff:
            return false
        }
    }
}
