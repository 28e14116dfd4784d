#if canImport(Glibc)
import Glibc
#endif

/// Fixed-size chunks for bytes a peer could not take yet, one pool per loop: a chunk is
/// taken when a write falls short and given back as soon as it is written out, so a
/// session whose peers keep up holds none. At most `keep` free chunks stay cached.
public struct BufferPool {
    public let chunkSize: Int
    private var free: [UnsafeMutableRawPointer] = []
    private let keep: Int

    public init(chunkSize: Int, keep: Int = 64) {
        self.chunkSize = chunkSize
        self.keep = keep
    }

    public mutating func take() -> UnsafeMutableRawPointer {
        free.popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 16)
    }

    public mutating func give(_ chunk: UnsafeMutableRawPointer) {
        if free.count < keep { free.append(chunk) } else { chunk.deallocate() }
    }
}
