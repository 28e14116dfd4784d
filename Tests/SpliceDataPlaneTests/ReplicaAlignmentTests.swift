import NIOCore
import Testing

@testable import SpliceDataPlane

/// The replica's held output is aligned by the server's raw byte count: what lies before
/// that count is dropped, the rest kept in order.
@Suite("Replica output alignment")
struct ReplicaAlignmentTests {
    private func backlog(_ chunks: [[UInt8]], from start: UInt64 = 0) -> ReplicaBacklog {
        var backlog = ReplicaBacklog()
        var position = start
        for chunk in chunks {
            chunk.withUnsafeBytes { backlog.append($0, at: position) }
            position += UInt64(chunk.count)
        }
        return backlog
    }

    private func bytes(_ backlog: ReplicaBacklog) -> [UInt8] {
        backlog.buffers.flatMap { Array($0.readableBytesView) }
    }

    @Test("bytes the server already sent are skipped, across buffer boundaries")
    func trimsAcrossBuffers() {
        var held = backlog([[0, 1, 2, 3], [4, 5, 6], [7, 8]])
        held.trim(before: 5)
        #expect(held.start == 5)
        #expect(bytes(held) == [5, 6, 7, 8])
        held.trim(before: 5)
        #expect(bytes(held) == [5, 6, 7, 8])
        held.trim(before: 9)
        #expect(held.isEmpty)
        #expect(held.start == 9)
    }

    @Test("a replica behind the server keeps nothing until it catches up")
    func replicaBehind() {
        var held = backlog([[0, 1, 2]])
        held.trim(before: 10)
        #expect(held.isEmpty)
        #expect(held.start == 10)
        #expect(held.count == 0)
    }

    @Test("bytes held after a trim start where the replica's output is")
    func appendAfterTrim() {
        var held = backlog([[0, 1, 2]])
        held.trim(before: 3)
        let more: [UInt8] = [3, 4]
        more.withUnsafeBytes { held.append($0, at: 3) }
        held.trim(before: 4)
        #expect(held.start == 4)
        #expect(bytes(held) == [4])
    }
}
