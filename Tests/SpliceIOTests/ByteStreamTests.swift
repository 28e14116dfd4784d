import SpliceTestSupport
import Testing

/// The pattern every relay test sends and checks must be one stream however it is cut:
/// receivers compare reads of whatever size the kernel returns. It used to drop the rest
/// of a word at every call, so a read of an odd size put every later check out of step
/// (RelayCoreTests.backPressure failed that way on a loaded machine).
@Suite("Test byte stream")
struct ByteStreamTests {
    @Test("cut anywhere, the pieces join into the same stream", arguments: [1, 3, 5, 7, 8, 13, 4096, 65_537])
    func cutAnywhere(piece: Int) {
        var whole = ByteStream(seed: 11)
        let reference = whole.next(200_000)
        var cut = ByteStream(seed: 11)
        var joined: [UInt8] = []
        var size = piece
        while joined.count < reference.count {
            joined += cut.next(min(size, reference.count - joined.count))
            size = size % 9 + piece  // uneven pieces
        }
        #expect(joined == reference)
    }
}
