import NIOCore

/// A byte-for-byte transform through a 256-entry table: stateless, output as long as input.
final class ByteMapFilter: StreamFilter {
    private let table: [UInt8]?

    /// `map` applied to every byte value; nil forwards buffers untouched.
    private init(_ map: ((UInt8) -> UInt8)?) {
        table = map.map { map in (0...255).map { map(UInt8($0)) } }
    }

    /// Forwards every byte unchanged.
    static var identity: ByteMapFilter { ByteMapFilter(nil) }

    /// ASCII lower case to upper case.
    static var upper: ByteMapFilter {
        ByteMapFilter { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 }
    }

    /// ASCII upper case to lower case.
    static var lower: ByteMapFilter {
        ByteMapFilter { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }
    }

    /// ASCII letters rotated by 13.
    static var rot13: ByteMapFilter {
        ByteMapFilter { byte in
            switch byte {
            case 0x41...0x5A: (byte - 0x41 + 13) % 26 + 0x41
            case 0x61...0x7A: (byte - 0x61 + 13) % 26 + 0x61
            default: byte
            }
        }
    }

    /// Every bit flipped.
    static var invert: ByteMapFilter { ByteMapFilter { ~$0 } }

    func transform(_ input: inout ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var output = input
        input = ByteBuffer()  // drop the caller's reference so the map below does not copy
        guard let table else { return output }
        table.withUnsafeBufferPointer { table in
            output.withUnsafeMutableReadableBytes { bytes in
                for index in bytes.indices {
                    bytes[index] = table[Int(bytes[index])]
                }
            }
        }
        return output
    }

    func finish(allocator: ByteBufferAllocator) throws -> ByteBuffer {
        allocator.buffer(capacity: 0)
    }
}
