/// The Internet checksum (RFC 1071) over several pieces of memory, summed in host order.
///
/// Ones' complement addition does not care about byte order as long as the result is stored
/// back in the order it was summed in (RFC 1071 §2(B)), so pieces are summed eight bytes at a
/// time as native words and the folded result is written as a native `UInt16`.
public struct InternetChecksum {
    private var sum: UInt64 = 0

    /// An empty sum.
    public init() {}

    /// Adds a piece. Every piece but the last must have an even length: a 16-bit word may
    /// not straddle two pieces.
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        let count = bytes.count
        var total = sum
        while index + 8 <= count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let (added, carry) = total.addingReportingOverflow(word)
            total = added &+ (carry ? 1 : 0)
            index += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while index < count {
            tail |= UInt64(bytes[index]) << shift
            shift += 8
            index += 1
        }
        let (added, carry) = total.addingReportingOverflow(tail)
        sum = added &+ (carry ? 1 : 0)
    }

    /// Adds bytes held in an array.
    public mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { add($0) }
    }

    /// The checksum to store (as a native `UInt16`, see the type's note).
    public var value: UInt16 {
        var folded = (sum >> 32) + (sum & 0xFFFF_FFFF)
        folded = (folded >> 32) + (folded & 0xFFFF_FFFF)
        folded = (folded >> 16) + (folded & 0xFFFF)
        folded = (folded >> 16) + (folded & 0xFFFF)
        folded = (folded >> 16) + (folded & 0xFFFF)
        return ~UInt16(truncatingIfNeeded: folded)
    }
}
