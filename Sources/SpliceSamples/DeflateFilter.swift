import CompressNIO
import NIOCore

/// Compresses into one raw deflate stream, sync-flushing after every chunk so that a reader
/// can decompress everything sent so far without waiting for the end.
final class DeflateFilter: StreamFilter {
    private let compressor: any NIOCompressor

    init() throws {
        compressor = CompressionAlgorithm.deflate().compressor
        try compressor.startStream()
    }

    func transform(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        // Sized by deflateBound plus the flush marker, so one call takes the whole chunk.
        try input.compressStream(with: compressor, flush: .sync, allocator: allocator)
    }

    func finish(allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var empty = allocator.buffer(capacity: 0)
        var output = allocator.buffer(capacity: 64)
        // The end of a flushed stream is a few bytes; grow the buffer if zlib asks anyway.
        for _ in 0..<8 {
            do {
                try empty.compressStream(to: &output, with: compressor, flush: .finish)
                try compressor.finishStream()
                return output
            } catch let error as CompressNIOError where error == .bufferOverflow {
                output.reserveCapacity(minimumWritableBytes: 4096)
            }
        }
        throw CompressNIOError.bufferOverflow
    }
}
