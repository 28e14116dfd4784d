import SpliceCore
import Synchronization

/// What the API may read of one split from any thread.
final class SplitRecord: Sendable {
    /// Per-direction counters.
    final class Leg: Sendable {
        /// Offset in the delivered stream where the copy starts.
        let fromOffset: UInt64
        /// Bytes queued to the recipient.
        let sent = ByteCounter()
        /// Bytes the recipient sent back.
        let discarded = ByteCounter()
        /// The copied endpoint's delivered-bytes counter, to tell how much a dropped split missed.
        let delivered: ByteCounter
        /// Bytes still queued when the split was dropped (never reached the recipient).
        let unsentAtDrop = Atomic<UInt64>(0)

        init(fromOffset: UInt64, delivered: ByteCounter) {
            self.fromOffset = fromOffset
            self.delivered = delivered
        }
    }

    let id: SplitID
    let request: SplitRequest
    private let mutable = Mutex<(state: SplitSnapshot.State, reason: String?, legs: [Direction: Leg])>((.active, nil, [:]))

    init(id: SplitID, request: SplitRequest) {
        self.id = id
        self.request = request
    }

    func add(_ leg: Leg, _ direction: Direction) {
        mutable.withLock { $0.legs[direction] = leg }
    }

    func update(state: SplitSnapshot.State, reason: String? = nil) {
        mutable.withLock {
            $0.state = state
            if let reason { $0.reason = reason }
        }
    }

    /// A view for the API.
    var snapshot: SplitSnapshot {
        let (state, reason, legs) = mutable.withLock { ($0.state, $0.reason, $0.legs) }
        return SplitSnapshot(id: id, request: request, state: state, reason: reason, legs: legs.mapValues { leg in
            let sent = leg.sent.value &- leg.unsentAtDrop.load(ordering: .relaxed)
            let copied = leg.delivered.value &- leg.fromOffset
            return SplitSnapshot.Leg(fromOffset: leg.fromOffset, bytesSent: sent,
                                     bytesDropped: state == .dropped && copied > sent ? copied - sent : 0,
                                     bytesDiscarded: leg.discarded.value)
        })
    }
}
