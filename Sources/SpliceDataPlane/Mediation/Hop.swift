import NIOCore
import SpliceCore

/// One mediator spliced into a session, as its event loop sees it.
final class Hop {
    let id: HopID
    /// The registered mediator's name, nil for an ad-hoc address.
    let mediator: MediatorName?
    /// The mediator's address or command, for display.
    let target: String
    let request: HopRequest
    /// The use of a registered mediator this hop holds, nil for an ad-hoc address.
    let lease: MediatorLease?
    /// One leg per covered direction.
    var legs: [Direction: HopLeg] = [:]
    /// Active, or draining while a removal takes effect.
    var state: HopSnapshot.State = .active
    /// The removal waiting for the drain, if one is under way.
    var removal: EventLoopPromise<RemovalReport>?
    /// The drain timeout's timer.
    var drainTimer: Scheduled<Void>?

    init(id: HopID, mediator: MediatorName?, target: String, request: HopRequest, lease: MediatorLease?) {
        self.id = id
        self.mediator = mediator
        self.target = target
        self.request = request
        self.lease = lease
    }

    /// What the session publishes of it.
    var view: HopView {
        HopView(id: id, mediator: mediator, target: target, request: request, state: state,
                legs: legs.mapValues(\.stats))
    }

    /// Whether the hop carries `direction`.
    func covers(_ direction: Direction) -> Bool {
        request.directions.directions.contains(direction)
    }
}

/// One direction of a hop: the mediator connection or process and the drain bookkeeping.
final class HopLeg {
    let direction: Direction
    /// The mediator connection (or process pipes) as a relay port.
    let port: Port
    /// The process behind an `exec` leg.
    let process: ExecProcess?
    /// Counters the API reads.
    let stats: HopLegCounters
    /// No longer fed; its remaining output is being forwarded.
    var draining = false
    /// Feeding stopped at this offset of the stream entering the hop.
    var removedAt: UInt64 = 0
    /// `port.read` when feeding stopped, to count what the drain forwarded.
    var emittedAtStop: UInt64 = 0
    /// Unspliced: the direct path is back.
    var done = false

    init(direction: Direction, port: Port, process: ExecProcess?, stats: HopLegCounters) {
        self.direction = direction
        self.port = port
        self.process = process
        self.stats = stats
    }

    /// Bytes the mediator emitted since feeding stopped.
    var drained: UInt64 { port.read.value &- emittedAtStop }
}

@available(*, unavailable)
extension Hop: Sendable {}

@available(*, unavailable)
extension HopLeg: Sendable {}
