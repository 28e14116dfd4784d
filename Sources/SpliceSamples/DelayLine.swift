import NIOCore

/// Buffers waiting out a fixed delay, released strictly in the order they went in.
struct DelayLine {
    private var queue = CircularBuffer<(due: NIODeadline, bytes: ByteBuffer)>()

    /// Bytes held right now.
    private(set) var heldBytes = 0

    /// Whether nothing is held.
    var isEmpty: Bool { queue.isEmpty }

    /// When the oldest held buffer is due.
    var nextDue: NIODeadline? { queue.first?.due }

    /// Holds `bytes` until `due`.
    mutating func append(_ bytes: ByteBuffer, due: NIODeadline) {
        queue.append((due, bytes))
        heldBytes += bytes.readableBytes
    }

    /// The oldest buffer if it is due by `now`.
    mutating func popDue(now: NIODeadline) -> ByteBuffer? {
        guard let first = queue.first, first.due <= now else { return nil }
        queue.removeFirst()
        heldBytes -= first.bytes.readableBytes
        return first.bytes
    }
}
