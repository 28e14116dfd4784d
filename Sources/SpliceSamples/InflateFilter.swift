import CompressNIO
import NIOCore

/// Decompresses raw deflate (one stream or several back to back), at most `chunkSize`
/// output bytes a call, so a small compressed read cannot balloon in memory.
final class InflateFilter: StreamFilter {
    /// The most output one `transform` call returns.
    static let chunkSize = 64 * 1024

    private let decompressor: any NIODecompressor
    private var stalled = false

    init() throws {
        decompressor = CompressionAlgorithm.deflate().decompressor
        try decompressor.startStream()
    }

    func transform(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var output = allocator.buffer(capacity: Self.chunkSize)
        let before = input.readableBytes
        do {
            try input.decompressStream(to: &output, with: decompressor)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            // The output chunk is full; the rest of the input waits for the next call.
        }
        if input.readableBytes == before && output.readableBytes == 0 {
            // zlib made no progress: the stream ended and more input follows. Start a new
            // stream once; if that makes no progress either, the input is not deflate.
            guard !stalled else { throw CompressNIOError.corruptData }
            stalled = true
            try decompressor.resetStream()
        } else {
            stalled = false
        }
        return output
    }

    func finish(allocator: ByteBufferAllocator) throws -> ByteBuffer {
        try decompressor.finishStream()
        return allocator.buffer(capacity: 0)
    }
}
