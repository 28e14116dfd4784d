import NIOCore
import SpliceCore

/// One hop of a direction's path: bytes read from `reader` are written to `writer`.
///
/// A direction with no mediator has one link, client → server or server → client; each
/// spliced mediator splits a link in two. Only the direction's `DirectionPath` makes,
/// replaces and joins links. `offset` counts the bytes that have passed, in the
/// stream that enters `writer`, which is what splice and removal offsets are reported in.
final class Link {
    /// The direction this link carries.
    let direction: Direction
    /// Where bytes come from.
    let reader: Port
    /// Where bytes go.
    let writer: Port
    /// Bytes that have passed this link since the session started (inherited on rewiring).
    var offset: UInt64
    /// While paused (a reconfiguration is taking effect) reads are held back, and bytes
    /// from a read already under way wait in `held`, bounded by one read cycle.
    var paused = false
    /// Bytes read while paused, forwarded in order when the link resumes.
    var held: [ByteBuffer] = []

    init(direction: Direction, reader: Port, writer: Port, offset: UInt64) {
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.offset = offset
    }

    /// Whether a read from `reader` may be issued now.
    var mayForward: Bool { !paused && writer.isWritable && (writer.taps.isEmpty || writer.tapsAllowWriting) }

    /// Bytes read from `reader`: kept (copied) in `held` while paused, else passed on.
    /// Returns whether they were passed on, so the caller copies them to the writer's taps.
    func carry(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if paused {
            held.append(ByteBuffer(bytes: bytes))
            return false
        }
        pass(bytes)
        return true
    }

    /// Moves bytes over the link: counts them as read, written and passed, and writes them.
    func pass(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        offset &+= UInt64(count)
        reader.read.add(count)
        writer.written.add(count)
        writer.write(bytes)
    }
}

@available(*, unavailable)
extension Link: Sendable {}
