import SpliceCore
import Synchronization

/// One hop leg's byte counters: its port counts on the session's loop, the API reads them
/// from any thread.
final class HopLegCounters: Sendable {
    /// Offset in the stream entering the hop where it was spliced.
    let splicedAt: UInt64
    /// Bytes written into the mediator.
    let fed: ByteCounter
    /// Bytes read back from the mediator.
    let emitted: ByteCounter

    /// Counters from zero, or going on from a predecessor's (a handoff).
    init(splicedAt: UInt64, fed: UInt64 = 0, emitted: UInt64 = 0) {
        self.splicedAt = splicedAt
        self.fed = ByteCounter(fed)
        self.emitted = ByteCounter(emitted)
    }

    /// The figures as of now.
    var snapshot: HopSnapshot.Leg {
        HopSnapshot.Leg(splicedAt: splicedAt, bytesIn: fed.value, bytesOut: emitted.value)
    }
}

/// One split leg's byte counters, counted on the session's loop and read from any thread.
final class SplitLegCounters: Sendable {
    /// Offset in the delivered stream where the copy starts.
    let fromOffset: UInt64
    /// Bytes queued to the recipient.
    let sent: ByteCounter
    /// Bytes the recipient sent back.
    let discarded: ByteCounter
    /// The copied endpoint's delivered-bytes counter, to tell how much a dropped split missed.
    let delivered: ByteCounter
    /// Bytes still queued when the split was dropped (never reached the recipient).
    let unsentAtDrop = Atomic<UInt64>(0)

    /// Counters from zero, or going on from a predecessor's (a handoff).
    init(fromOffset: UInt64, delivered: ByteCounter, sent: UInt64 = 0, discarded: UInt64 = 0, unsentAtDrop: UInt64 = 0) {
        self.fromOffset = fromOffset
        self.delivered = delivered
        self.sent = ByteCounter(sent)
        self.discarded = ByteCounter(discarded)
        self.unsentAtDrop.store(unsentAtDrop, ordering: .relaxed)
    }

    /// The figures as of now, for a split in `state`.
    func snapshot(state: SplitSnapshot.State) -> SplitSnapshot.Leg {
        let sent = sent.value &- unsentAtDrop.load(ordering: .relaxed)
        let copied = delivered.value &- fromOffset
        return SplitSnapshot.Leg(fromOffset: fromOffset, bytesSent: sent,
                                 bytesDropped: state == .dropped && copied > sent ? copied - sent : 0,
                                 bytesDiscarded: discarded.value)
    }
}
