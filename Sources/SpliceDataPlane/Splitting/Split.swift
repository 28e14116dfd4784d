import NIOCore
import SpliceCore

/// One recipient of copies of a session's stream, as its event loop sees it.
final class Split {
    let id: SplitID
    let request: SplitRequest
    /// One leg per copied direction.
    var legs: [Direction: SplitLeg] = [:]
    /// Active until dropped, or closed when the copied directions ended.
    var state: SplitSnapshot.State = .active
    /// Why it was dropped, once it was.
    var dropReason: String?
    /// A client-to-server, lossless copy from offset 0: it can take over as the server.
    var isReplica = false
    /// A dropped split taken over from a predecessor process: its figures, with no
    /// connection behind them (see Session+Handoff).
    var handedStats: [Direction: SplitLegCounters] = [:]

    init(id: SplitID, request: SplitRequest) {
        self.id = id
        self.request = request
    }

    /// What the session publishes of it.
    var view: SplitView {
        SplitView(id: id, request: request, state: state, reason: dropReason,
                  legs: legs.isEmpty ? handedStats : legs.mapValues(\.stats))
    }
}

/// One direction of a split: the recipient's connection and, for a replica, its output
/// held until it is needed.
final class SplitLeg {
    let direction: Direction
    /// The recipient's connection as a relay port (a tap of the direction's endpoint).
    let port: Port
    /// Counters the API reads.
    let stats: SplitLegCounters
    /// The split's slow-recipient policy.
    let policy: SlowPolicy
    /// A replica's output past what the server has sent, held for a failover.
    var backlog = ReplicaBacklog()

    init(direction: Direction, port: Port, stats: SplitLegCounters, policy: SlowPolicy) {
        self.direction = direction
        self.port = port
        self.stats = stats
        self.policy = policy
    }
}

/// A replica's output that the client may still need: bytes from `start` on, in the
/// replica's own stream. Aligned by the server's raw output (DESIGN, Data plane 8).
struct ReplicaBacklog {
    /// The held bytes, in order.
    private(set) var buffers: [ByteBuffer] = []
    /// Position, in the replica's output, of the first held byte.
    private(set) var start: UInt64 = 0

    /// Bytes held.
    var count: Int { buffers.reduce(0) { $0 + $1.readableBytes } }

    var isEmpty: Bool { buffers.isEmpty }

    /// The held bytes in one piece, and where they start (a handoff carries them).
    var bytes: (start: UInt64, bytes: [UInt8]) {
        (start, buffers.reduce(into: []) { all, buffer in buffer.withUnsafeReadableBytes { all.append(contentsOf: $0) } })
    }

    /// Keeps `bytes`, which begin at `position` of the replica's output.
    mutating func append(_ bytes: UnsafeRawBufferPointer, at position: UInt64) {
        if buffers.isEmpty { start = position }
        buffers.append(ByteBuffer(bytes: bytes))
    }

    /// Drops held bytes that lie before `position` of the replica's output (the server
    /// has already sent their equivalent).
    mutating func trim(before position: UInt64) {
        while start < position, !buffers.isEmpty {
            let skip = Int(min(position - start, UInt64(buffers[0].readableBytes)))
            if skip == buffers[0].readableBytes {
                buffers.removeFirst()
            } else {
                buffers[0].moveReaderIndex(forwardBy: skip)
            }
            start += UInt64(skip)
        }
        if buffers.isEmpty { start = max(start, position) }
    }

    mutating func removeAll() { buffers.removeAll() }
}

@available(*, unavailable)
extension Split: Sendable {}

@available(*, unavailable)
extension SplitLeg: Sendable {}
