import NIOCore
import NIOEmbedded
import SpliceCore
import Testing

@testable import SpliceDataPlane

/// The replica's held output is aligned by the server's raw byte count: what lies before
/// that count is dropped, the rest kept in order.
@Suite("Replica output alignment")
struct ReplicaAlignmentTests {
    private func leg() -> SplitLeg {
        let channel = EmbeddedChannel()
        let handler = PortHandler()
        let port = Port(role: .split(Identifier(prefix: "x", number: 1), .clientToServer), channel: channel,
                        handler: handler, session: nil)
        return SplitLeg(direction: .clientToServer, port: port,
                        stats: SplitRecord.Leg(fromOffset: 0, delivered: ByteCounter()), policy: .block)
    }

    private func bytes(_ leg: SplitLeg) -> [UInt8] {
        leg.held.flatMap { Array($0.readableBytesView) }
    }

    @Test("bytes the server already sent are skipped, across buffer boundaries")
    func trimsAcrossBuffers() {
        let leg = leg()
        leg.held = [ByteBuffer(bytes: [0, 1, 2, 3]), ByteBuffer(bytes: [4, 5, 6]), ByteBuffer(bytes: [7, 8])]
        leg.heldStart = 0
        leg.trimHeld(before: 5)
        #expect(leg.heldStart == 5)
        #expect(bytes(leg) == [5, 6, 7, 8])
        leg.trimHeld(before: 5)
        #expect(bytes(leg) == [5, 6, 7, 8])
        leg.trimHeld(before: 9)
        #expect(leg.held.isEmpty)
        #expect(leg.heldStart == 9)
    }

    @Test("a replica behind the server keeps nothing until it catches up")
    func replicaBehind() {
        let leg = leg()
        leg.heldStart = 0
        leg.held = [ByteBuffer(bytes: [0, 1, 2])]
        leg.trimHeld(before: 10)
        #expect(leg.held.isEmpty)
        #expect(leg.heldStart == 10)
        #expect(leg.heldBytes == 0)
    }
}
