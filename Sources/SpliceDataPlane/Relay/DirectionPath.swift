import NIOCore
import SpliceCore

/// One direction of a session: its links from the sending endpoint to the receiving one.
///
/// The one owner of the chain's wiring (as Toxiproxy's `ToxicLink.AddToxic` and
/// `RemoveToxic` are of a toxic stack): a session splices a port in, takes one out,
/// replaces an endpoint on failover and detaches at its end only through these methods.
/// Each keeps the invariant `isWired` checks: consecutive links share a port, every link is
/// its reader's `outLink` and its writer's `inLink`, and a link that takes the place of
/// others starts at their offset, so offsets go on counting the same stream. What follows
/// a rewiring on the sockets (resuming reads, forwarding held bytes, passing an EOF on) is
/// the caller's.
final class DirectionPath {
    /// The direction.
    let direction: Direction
    /// Links in stream order; the first reads the sender, the last writes the receiver.
    private(set) var links: [Link]

    /// A direct path: one link from `sender` to `receiver`, at offset 0.
    init(direction: Direction, from sender: Port, to receiver: Port) {
        self.direction = direction
        links = []
        links = [wire(sender, to: receiver, offset: 0)]
    }

    /// The port that receives this direction's bytes.
    var sink: Port? { links.last?.writer }

    /// Splits link `index` into reader → `port` → writer. Both halves start at the link's
    /// offset: bytes that passed before reached the writer directly, the next go through
    /// `port`.
    @discardableResult
    func splice(_ port: Port, atLink index: Int) -> (feed: Link, out: Link) {
        let old = links[index]
        let feed = wire(old.reader, to: port, offset: old.offset)
        let out = wire(port, to: old.writer, offset: old.offset)
        links.replaceSubrange(index...index, with: [feed, out])
        assert(isWired, "splice broke the \(direction.rawValue) chain")
        return (feed, out)
    }

    /// What taking a port out of the path leaves for the caller to do.
    struct Unspliced {
        /// The link that joins the port's neighbours again, at the offset the port's
        /// output link had reached.
        let link: Link
        /// Bytes the port's feed held while paused, in order: to forward over `link` first.
        let held: [ByteBuffer]
        /// Whether the sender of `link` has sent EOF: to pass on after `held`.
        var eofSeen: Bool { link.reader.eofReceived }
    }

    /// Joins the two links around `port` back into one and unwires the port. Nil if the
    /// port was not spliced into this path: the path is left as it is, and the port, if
    /// none of its links is the path's, is unwired all the same (it is on its way out).
    func unsplice(_ port: Port) -> Unspliced? {
        guard let feed = port.inLink, let out = port.outLink, let index = links.firstIndex(where: { $0 === feed }),
              index + 1 < links.count, links[index + 1] === out else {
            if !links.contains(where: { $0 === port.inLink || $0 === port.outLink }) {
                port.inLink = nil
                port.outLink = nil
            }
            return nil
        }
        port.inLink = nil
        port.outLink = nil
        let joined = wire(feed.reader, to: out.writer, offset: out.offset)
        links.replaceSubrange(index...(index + 1), with: [joined])
        let held = feed.held
        feed.held.removeAll()
        assert(isWired, "unsplice broke the \(direction.rawValue) chain")
        return Unspliced(link: joined, held: held)
    }

    /// Makes `port` the receiver: the last link writes into it from the same offset, and
    /// the old receiver is no longer fed. A pause and the bytes it holds carry over: they
    /// come from the same reader and are owed to whoever receives now.
    @discardableResult
    func replaceReceiver(with port: Port) -> Link {
        let last = links[links.count - 1]
        last.writer.inLink = nil
        let link = wire(last.reader, to: port, offset: last.offset)
        link.paused = last.paused
        link.held = last.held
        last.held.removeAll()
        links[links.count - 1] = link
        assert(isWired, "replacing the receiver broke the \(direction.rawValue) chain")
        return link
    }

    /// Makes `port` the sender: the first link reads it from the same offset, and the old
    /// sender feeds nothing. A pause carries over (a drain of the hop it feeds is under way,
    /// and what the new sender sends must wait for it like the rest); bytes held from the
    /// old sender are dropped, since they never passed and the new sender's stream goes on
    /// from the link's offset.
    @discardableResult
    func replaceSender(with port: Port) -> Link {
        let first = links[0]
        first.reader.outLink = nil
        let link = wire(port, to: first.writer, offset: first.offset)
        link.paused = first.paused
        first.held.removeAll()
        links[0] = link
        assert(isWired, "replacing the sender broke the \(direction.rawValue) chain")
        return link
    }

    /// Unwires every port and drops held bytes, so that late socket events find no link to
    /// act on. The links stay, with their offsets, and carry nothing more.
    func detachAll() {
        for link in links {
            link.reader.outLink = nil
            link.writer.inLink = nil
            link.held.removeAll()
        }
    }

    /// Whether the chain is whole: links in this direction, each wired to its ports, each
    /// reading the port the one before writes.
    var isWired: Bool {
        guard !links.isEmpty else { return false }
        for (index, link) in links.enumerated() {
            guard link.direction == direction, link.reader.outLink === link, link.writer.inLink === link else {
                return false
            }
            if index > 0, links[index - 1].writer !== link.reader { return false }
        }
        return true
    }

    /// A link from `reader` to `writer`, set as their out- and in-link.
    private func wire(_ reader: Port, to writer: Port, offset: UInt64) -> Link {
        let link = Link(direction: direction, reader: reader, writer: writer, offset: offset)
        reader.outLink = link
        writer.inLink = link
        return link
    }
}

@available(*, unavailable)
extension DirectionPath: Sendable {}
