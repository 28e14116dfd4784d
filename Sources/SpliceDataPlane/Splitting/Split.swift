import NIOCore
import SpliceCore

/// One recipient of copies of a session's stream, as its event loop sees it.
final class Split {
    /// What the API sees of it.
    let record: SplitRecord
    /// One leg per copied direction.
    var legs: [Direction: SplitLeg] = [:]
    /// Active until dropped, or closed when the copied directions ended.
    var state: SplitSnapshot.State = .active
    /// A client-to-server, lossless copy from offset 0: it can take over as the server.
    var isReplica = false

    init(record: SplitRecord) {
        self.record = record
    }

    var id: Identifier { record.id }
    var request: SplitRequest { record.request }
}

/// One direction of a split: the recipient's connection and, for a replica, its output
/// held until it is needed.
final class SplitLeg {
    let direction: Direction
    /// The recipient's connection as a relay port (a tap of the direction's endpoint).
    let port: Port
    /// Counters the API reads.
    let stats: SplitRecord.Leg
    /// The split's slow-recipient policy.
    let policy: SlowPolicy
    /// A replica's output past what the server has sent, held for a failover.
    var held: [ByteBuffer] = []
    /// Position, in the replica's output, of the first held byte.
    var heldStart: UInt64 = 0

    init(direction: Direction, port: Port, stats: SplitRecord.Leg, policy: SlowPolicy) {
        self.direction = direction
        self.port = port
        self.stats = stats
        self.policy = policy
    }

    /// Bytes held beyond `heldStart`.
    var heldBytes: Int { held.reduce(0) { $0 + $1.readableBytes } }

    /// Drops held bytes that lie before `position` of the replica's output (the server has
    /// already sent their equivalent).
    func trimHeld(before position: UInt64) {
        while heldStart < position, !held.isEmpty {
            let skip = Int(min(position - heldStart, UInt64(held[0].readableBytes)))
            if skip == held[0].readableBytes {
                held.removeFirst()
            } else {
                held[0].moveReaderIndex(forwardBy: skip)
            }
            heldStart += UInt64(skip)
        }
        if held.isEmpty { heldStart = max(heldStart, position) }
    }
}

@available(*, unavailable)
extension Split: Sendable {}

@available(*, unavailable)
extension SplitLeg: Sendable {}
