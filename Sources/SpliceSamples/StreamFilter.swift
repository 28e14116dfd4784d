import NIOCore

/// One connection's byte transform: stateful, used on that connection's event loop only.
protocol StreamFilter: AnyObject {
    /// Consumes some or all of `input` and returns the bytes to send for it (maybe none).
    ///
    /// Each call consumes input or returns output, so repeated calls make progress; output
    /// is bounded per call, so a caller that stops calling bounds its memory.
    func transform(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer

    /// The bytes that end the output once the input has ended (a compressor's last block).
    func finish(allocator: ByteBufferAllocator) throws -> ByteBuffer
}

extension SampleTransform {
    /// A fresh filter for one connection; `delay` is the identity here (the handler times it).
    func makeFilter() throws -> any StreamFilter {
        switch self {
        case .identity, .delay: ByteMapFilter.identity
        case .upper: ByteMapFilter.upper
        case .lower: ByteMapFilter.lower
        case .rot13: ByteMapFilter.rot13
        case .invert: ByteMapFilter.invert
        case .deflate: try DeflateFilter()
        case .inflate: try InflateFilter()
        }
    }

    /// How long each byte is held before it is forwarded; nil forwards at once.
    var holdTime: TimeAmount? {
        guard case .delay(let milliseconds) = self, milliseconds > 0 else { return nil }
        return .milliseconds(Int64(milliseconds))
    }
}
