import NIOCore
import SpliceCore
import Testing

@testable import SpliceDataPlane

/// Splice and removal offsets without sockets: a direction's links over in-memory ports,
/// fed one byte at a time, every rewiring through `DirectionPath`.
@Suite("Direction path wiring and offsets")
struct DirectionPathTests {
    /// The sender's stream (below 0x80, so `marked` bytes are told apart).
    static let stream: [UInt8] = Array(0..<20)
    /// A mediator that doubles each byte: the stream out of it is longer than the stream in,
    /// so an offset counted in the wrong stream shows.
    static let doubled: @Sendable (UInt8) -> [UInt8] = { [$0, $0] }
    /// A mediator that sets each byte's high bit.
    static let marked: @Sendable (UInt8) -> [UInt8] = { [$0 | 0x80] }

    private var stream: [UInt8] { Self.stream }

    private func bytes(_ buffers: [ByteBuffer]) -> [UInt8] {
        buffers.flatMap { Array($0.readableBytesView) }
    }

    /// The ports the path's links read, in order, by identity.
    private func readers(_ path: DirectionPath) -> [ObjectIdentifier] {
        path.links.map { ObjectIdentifier($0.reader) }
    }

    private func ids(_ ports: Port...) -> [ObjectIdentifier] {
        ports.map { ObjectIdentifier($0) }
    }

    @Test("a direct path passes every byte and counts it once")
    func directPath() {
        let run = MemoryDirection(.clientToServer)
        run.send(stream)
        #expect(run.received == stream)
        #expect(run.path.links.count == 1)
        #expect(run.path.links[0].offset == UInt64(stream.count))
        #expect(run.sender.read.value == UInt64(stream.count))
        #expect(run.receiver.written.value == UInt64(stream.count))
        #expect(run.path.isWired)
    }

    @Test("a hop spliced at offset k: bytes before k reach the receiver directly, the rest go through the hop",
          arguments: 0...20)
    func spliceAt(k: Int) {
        let run = MemoryDirection(.clientToServer)
        run.send(stream[..<k])
        let hop = run.mediatorPort(1)
        let (feed, out) = run.splice(hop, atLink: 0, Self.doubled)
        #expect(feed.offset == UInt64(k))
        #expect(out.offset == UInt64(k))
        #expect(run.sender.outLink === feed && hop.inLink === feed)
        #expect(hop.outLink === out && run.receiver.inLink === out)
        #expect(readers(run.path) == ids(run.sender, hop))
        run.send(stream[k...])

        #expect(hop.memory.written == Array(stream[k...]))
        #expect(run.received == Array(stream[..<k]) + stream[k...].flatMap(Self.doubled))
        // The feed counts the stream entering the hop from the session's start, the out
        // link the stream entering the receiver.
        #expect(feed.offset == UInt64(stream.count))
        #expect(out.offset == UInt64(run.received.count))
        #expect(hop.written.value == UInt64(stream.count - k))
        #expect(hop.read.value == UInt64(2 * (stream.count - k)))
        #expect(run.path.isWired)
    }

    @Test("a second hop on the receiver's side starts at the offset of the stream out of the first")
    func secondHopTowardsReceiver() {
        for (k, m) in [(0, 0), (0, 9), (4, 4), (4, 11), (7, 20)] {
            let run = MemoryDirection(.clientToServer)
            run.send(stream[..<k])
            let first = run.mediatorPort(1)
            run.splice(first, atLink: 0, Self.doubled)
            run.send(stream[k..<m])
            let second = run.mediatorPort(2)
            let (feed, out) = run.splice(second, atLink: 1, Self.marked)
            let at = UInt64(k + 2 * (m - k))
            #expect(feed.offset == at && out.offset == at, "k \(k), m \(m)")
            #expect(readers(run.path) == ids(run.sender, first, second))
            run.send(stream[m...])

            #expect(first.memory.written == Array(stream[k...]))
            #expect(second.memory.written == stream[m...].flatMap(Self.doubled))
            #expect(run.received == Array(stream[..<k]) + stream[k..<m].flatMap(Self.doubled)
                + stream[m...].flatMap(Self.doubled).flatMap(Self.marked), "k \(k), m \(m)")
            #expect(out.offset == UInt64(run.received.count))
            #expect(run.path.isWired)
        }
    }

    @Test("a second hop on the sender's side starts at the offset of the sender's stream")
    func secondHopTowardsSender() {
        for (k, m) in [(0, 0), (0, 9), (4, 4), (4, 11), (7, 20)] {
            let run = MemoryDirection(.clientToServer)
            run.send(stream[..<k])
            let first = run.mediatorPort(1)
            let (firstFeed, _) = run.splice(first, atLink: 0, Self.doubled)
            run.send(stream[k..<m])
            let second = run.mediatorPort(2)
            let (feed, out) = run.splice(second, atLink: 0, Self.marked)
            #expect(feed.offset == UInt64(m) && out.offset == UInt64(m), "k \(k), m \(m)")
            #expect(readers(run.path) == ids(run.sender, second, first))
            #expect(first.inLink === out && !run.path.links.contains(where: { $0 === firstFeed }))
            run.send(stream[m...])

            #expect(second.memory.written == Array(stream[m...]))
            #expect(first.memory.written == Array(stream[k..<m]) + stream[m...].flatMap(Self.marked))
            #expect(run.received == Array(stream[..<k]) + stream[k..<m].flatMap(Self.doubled)
                + stream[m...].flatMap(Self.marked).flatMap(Self.doubled), "k \(k), m \(m)")
            #expect(out.offset == UInt64(stream.count))
            #expect(run.path.links[2].offset == UInt64(run.received.count))
            #expect(run.path.isWired)
        }
    }

    @Test("a removal: the hop's last output first, then the bytes held while it drained, in order, then the direct path",
          arguments: [[0, 0, 0], [0, 5, 9], [3, 3, 3], [3, 8, 8], [3, 8, 14], [6, 20, 20]])
    func removal(offsets: [Int]) throws {
        let (k, m, p) = (offsets[0], offsets[1], offsets[2])
        let run = MemoryDirection(.clientToServer)
        run.send(stream[..<k])
        let hop = run.mediatorPort(1)
        let (feed, out) = run.splice(hop, atLink: 0, Self.doubled)
        // The mediator lags: what it was fed comes out only after feeding stops.
        run.send(stream[k..<m], answering: false)
        feed.paused = true
        let removedAt = feed.offset
        #expect(removedAt == UInt64(m))
        run.send(stream[m..<p], answering: false)
        #expect(hop.memory.written == Array(stream[k..<m]), "nothing past the removal offset reaches the hop")
        run.answer()
        #expect(run.received == Array(stream[..<k]) + stream[k..<m].flatMap(Self.doubled))

        let removed = try #require(run.path.unsplice(hop))
        #expect(bytes(removed.held) == Array(stream[m..<p]))
        #expect(!removed.eofSeen)
        #expect(removed.link.offset == out.offset)
        #expect(removed.link.offset == UInt64(run.received.count))
        #expect(feed.held.isEmpty)
        #expect(hop.inLink == nil && hop.outLink == nil)
        #expect(run.path.links.count == 1 && run.path.links[0] === removed.link)
        #expect(run.sender.outLink === removed.link && run.receiver.inLink === removed.link)
        run.forward(removed.held, over: removed.link)
        run.send(stream[p...])

        #expect(run.received == Array(stream[..<k]) + stream[k..<m].flatMap(Self.doubled) + stream[m...])
        #expect(removed.link.offset == UInt64(run.received.count))
        #expect(run.path.isWired)
    }

    @Test("removing the first of two hops joins the sender to the second at the offset of the stream into it")
    func removalOfFirstOfTwo() throws {
        let run = MemoryDirection(.clientToServer)
        run.send(stream[..<2])
        let first = run.mediatorPort(1)
        run.splice(first, atLink: 0, Self.doubled)
        run.send(stream[2..<5])
        let second = run.mediatorPort(2)
        let (secondFeed, _) = run.splice(second, atLink: 1, Self.marked)
        run.send(stream[5..<9])
        let intoSecond = secondFeed.offset
        #expect(intoSecond == UInt64(2 + 2 * 7))

        let removed = try #require(run.path.unsplice(first))
        #expect(removed.held.isEmpty)
        #expect(removed.link.reader === run.sender && removed.link.writer === second)
        #expect(removed.link.offset == intoSecond)
        run.send(stream[9...])

        #expect(second.memory.written == stream[5..<9].flatMap(Self.doubled) + stream[9...])
        #expect(removed.link.offset == intoSecond + UInt64(stream.count - 9))
        #expect(run.received == Array(stream[..<2]) + stream[2..<5].flatMap(Self.doubled)
            + stream[5..<9].flatMap(Self.doubled).flatMap(Self.marked) + stream[9...].flatMap(Self.marked))
        #expect(run.path.isWired)
    }

    @Test("an EOF the sender gave while the hop drained is reported with the held bytes")
    func removalAfterEOF() throws {
        let run = MemoryDirection(.serverToClient)
        let hop = run.mediatorPort(1)
        let (feed, _) = run.splice(hop, atLink: 0, Self.doubled)
        run.send(stream[..<4])
        feed.paused = true
        run.send(stream[4...])
        run.sender.eofReceived = true

        let removed = try #require(run.path.unsplice(hop))
        #expect(removed.eofSeen)
        #expect(bytes(removed.held) == Array(stream[4...]))
    }

    @Test("unsplicing a port that is not in the path changes nothing and unwires the port")
    func unspliceStranger() {
        let run = MemoryDirection(.clientToServer)
        let hop = run.mediatorPort(1)
        run.splice(hop, atLink: 0, Self.doubled)
        run.send(stream[..<3])
        let links = run.path.links
        let other = MemoryDirection(.clientToServer)
        let stranger = other.mediatorPort(2)
        other.splice(stranger, atLink: 0, Self.marked)

        #expect(run.path.unsplice(stranger) == nil)
        #expect(stranger.inLink == nil && stranger.outLink == nil)
        #expect(run.path.links.count == links.count && zip(run.path.links, links).allSatisfy { $0 === $1 })
        #expect(run.path.isWired)
        // An endpoint is in the path but spliced nowhere: it keeps its link.
        #expect(run.path.unsplice(run.sender) == nil)
        #expect(run.path.unsplice(run.receiver) == nil)
        #expect(run.path.links.count == links.count && zip(run.path.links, links).allSatisfy { $0 === $1 })
        #expect(run.path.isWired)
    }

    @Test("a new receiver takes the last link's place at its offset; the old one is fed no more")
    func replaceReceiver() {
        let run = MemoryDirection(.clientToServer)
        run.send(stream[..<3])
        let hop = run.mediatorPort(1)
        run.splice(hop, atLink: 0, Self.doubled)
        run.send(stream[3..<8])
        let before = run.path.links[1].offset
        let replica = Port.inMemory(.server)

        let link = run.path.replaceReceiver(with: replica)
        #expect(link.offset == before)
        #expect(link.reader === hop && hop.outLink === link && replica.inLink === link)
        #expect(run.receiver.inLink == nil)
        #expect(run.path.sink === replica)
        run.send(stream[8...])

        #expect(run.received == Array(stream[..<3]) + stream[3..<8].flatMap(Self.doubled))
        #expect(replica.memory.written == stream[8...].flatMap(Self.doubled))
        #expect(link.offset == UInt64(run.received.count + replica.memory.written.count))
        #expect(run.path.isWired)
    }

    @Test("a new sender takes the first link's place at its offset; the old one feeds nothing")
    func replaceSender() {
        let run = MemoryDirection(.serverToClient)
        let hop = run.mediatorPort(1)
        run.splice(hop, atLink: 0, Self.doubled)
        run.send(stream[..<6])
        let before = run.path.links[0].offset
        let replica = Port.inMemory(.server)

        let link = run.path.replaceSender(with: replica)
        #expect(link.offset == before)
        #expect(link.writer === hop && replica.outLink === link && hop.inLink === link)
        #expect(run.sender.outLink == nil)
        #expect(run.path.isWired)
        for byte in stream[6...] {
            withUnsafeBytes(of: byte) { #expect(link.carry($0)) }
        }
        run.answer()

        #expect(hop.memory.written == stream)
        #expect(link.offset == UInt64(stream.count))
        #expect(run.received == stream.flatMap(Self.doubled))
        #expect(replica.read.value == UInt64(stream.count - 6))
    }

    @Test("a new sender of a link paused for a drain stays paused; what the old sender had held is dropped")
    func replaceSenderWhileDraining() throws {
        let run = MemoryDirection(.serverToClient)
        let hop = run.mediatorPort(1)
        let (feed, _) = run.splice(hop, atLink: 0, Self.doubled)
        run.send(stream[..<6])
        feed.paused = true
        run.send(stream[6..<9])
        let replica = Port.inMemory(.server)

        let link = run.path.replaceSender(with: replica)
        #expect(link.paused)
        #expect(link.held.isEmpty && feed.held.isEmpty)
        #expect(link.offset == 6)
        // The replica's stream goes on from offset 6: it waits in the link like the rest.
        for byte in stream[6...] {
            withUnsafeBytes(of: byte) { #expect(!link.carry($0)) }
        }
        #expect(hop.memory.written == Array(stream[..<6]))

        let removed = try #require(run.path.unsplice(hop))
        #expect(removed.link.reader === replica)
        #expect(bytes(removed.held) == Array(stream[6...]))
        run.forward(removed.held, over: removed.link)
        #expect(run.received == stream[..<6].flatMap(Self.doubled) + stream[6...])
    }

    @Test("a new receiver of a paused link keeps the pause and the bytes held for it")
    func replaceReceiverWhilePaused() {
        let run = MemoryDirection(.clientToServer)
        run.send(stream[..<4])
        run.path.links[0].paused = true
        run.send(stream[4..<7])
        let replica = Port.inMemory(.server)

        let link = run.path.replaceReceiver(with: replica)
        #expect(link.paused)
        #expect(bytes(link.held) == Array(stream[4..<7]))
        #expect(link.offset == 4)
        #expect(run.path.isWired)
    }

    @Test("detaching unwires every port and drops held bytes; the links keep their offsets")
    func detachAll() {
        let run = MemoryDirection(.clientToServer)
        let hop = run.mediatorPort(1)
        run.send(stream[..<5])
        let (feed, out) = run.splice(hop, atLink: 0, Self.doubled)
        run.send(stream[5..<9])
        feed.paused = true
        run.send(stream[9...])
        #expect(!feed.held.isEmpty)

        run.path.detachAll()
        for port in [run.sender, hop, run.receiver] {
            #expect(port.inLink == nil && port.outLink == nil, "\(port.role)")
        }
        #expect(feed.held.isEmpty)
        #expect(run.path.links.count == 2)
        #expect(feed.offset == 9 && out.offset == UInt64(5 + 2 * 4))
        #expect(!run.path.isWired)
    }
}
