import SpliceCore

/// One direction of a session: its links from the sending endpoint to the receiving one,
/// and how far its end-of-stream has got.
final class DirectionPath {
    /// The direction.
    let direction: Direction
    /// Links in stream order; the first reads the sender, the last writes the receiver.
    var links: [Link]
    /// The EOF has reached the receiver: every byte was written and its output half-closed.
    var finished = false

    init(direction: Direction, links: [Link]) {
        self.direction = direction
        self.links = links
    }

    /// The port that receives this direction's bytes.
    var sink: Port? { links.last?.writer }
}

@available(*, unavailable)
extension DirectionPath: Sendable {}
