@preconcurrency import Crypto
import Foundation

/// Deterministic pseudo-random bytes, so a transfer can be checked without keeping a copy.
public struct ByteStream: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    /// The next `count` bytes of the stream (xorshift64*, eight bytes a step).
    public mutating func next(_ count: Int) -> [UInt8] {
        let words = (count + 7) / 8
        var out = [UInt8](repeating: 0, count: words * 8)
        out.withUnsafeMutableBytes { raw in
            let words64 = raw.bindMemory(to: UInt64.self)
            for i in 0..<words {
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
                words64[i] = (state &* 0x2545_F491_4F6C_DD1D).littleEndian
            }
        }
        out.removeLast(words * 8 - count)
        return out
    }
}

/// An incremental SHA-256 over received bytes.
public struct Digest: Sendable {
    private var hasher = SHA256()
    public private(set) var count = 0

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        hasher.update(data: bytes)
        count += bytes.count
    }

    /// Hex digest of everything so far.
    public func hex() -> String {
        hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Counts this process's open file descriptors (Linux `/proc/self/fd`).
public func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}
