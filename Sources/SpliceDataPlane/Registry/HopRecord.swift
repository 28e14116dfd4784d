import SpliceCore
import Synchronization

/// What the API may read of one hop from any thread: its fixed facts, its state and the
/// byte counters its legs update on the session's loop.
final class HopRecord: Sendable {
    /// Per-direction counters and splice offset.
    final class Leg: Sendable {
        /// Offset in the stream entering the hop where it was spliced.
        let splicedAt: UInt64
        /// Bytes written into the mediator.
        let fed = ByteCounter()
        /// Bytes read back from the mediator.
        let emitted = ByteCounter()

        init(splicedAt: UInt64) {
            self.splicedAt = splicedAt
        }
    }

    let id: HopID
    let mediator: MediatorName?
    let target: String
    let request: HopRequest
    private let mutable = Mutex<(state: HopSnapshot.State, legs: [Direction: Leg])>((.active, [:]))

    init(id: HopID, mediator: MediatorName?, target: String, request: HopRequest) {
        self.id = id
        self.mediator = mediator
        self.target = target
        self.request = request
    }

    /// Records a leg once it is spliced.
    func add(_ leg: Leg, _ direction: Direction) {
        mutable.withLock { $0.legs[direction] = leg }
    }

    /// Records a state change.
    func update(state: HopSnapshot.State) {
        mutable.withLock { $0.state = state }
    }

    /// A view for the API at stack `position`.
    func snapshot(position: Int) -> HopSnapshot {
        let (state, legs) = mutable.withLock { ($0.state, $0.legs) }
        return HopSnapshot(
            id: id, mediator: mediator, target: target, directions: request.directions, position: position,
            state: state, onFailure: request.onFailure, drainTimeoutMs: request.drainTimeoutMs,
            legs: legs.mapValues {
                HopSnapshot.Leg(splicedAt: $0.splicedAt, bytesIn: $0.fed.value, bytesOut: $0.emitted.value)
            })
    }
}
