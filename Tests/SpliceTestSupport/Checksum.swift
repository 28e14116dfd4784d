@preconcurrency import Crypto
import Foundation

/// Deterministic pseudo-random bytes, so a transfer can be checked without keeping a copy.
public struct ByteStream: Sendable {
    private var state: UInt64
    /// Bytes of the last word generated that were not handed out yet.
    private var spare: [UInt8] = []

    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    /// The next `count` bytes of the stream (xorshift64*, eight bytes a step). One stream
    /// however it is cut: `next(a) + next(b) == next(a + b)`, so a receiver can check
    /// reads of any size (a loaded machine returns odd ones) against what was sent.
    public mutating func next(_ count: Int) -> [UInt8] {
        let fromSpare = min(count, spare.count)
        var out = Array(spare[..<fromSpare])
        spare.removeFirst(fromSpare)
        let rest = count - fromSpare
        guard rest > 0 else { return out }
        let words = (rest + 7) / 8
        var fresh = [UInt8](repeating: 0, count: words * 8)
        fresh.withUnsafeMutableBytes { raw in
            let words64 = raw.bindMemory(to: UInt64.self)
            for i in 0..<words {
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
                words64[i] = (state &* 0x2545_F491_4F6C_DD1D).littleEndian
            }
        }
        spare = Array(fresh[rest...])
        out += fresh[..<rest]
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

/// This process's TCP sockets on the gateway's side of a test: accepted on `accepting`
/// (not the listening socket itself), or connected to one of `dialing`.
///
/// Unlike a count of all descriptors, it is not disturbed by other tests running at the
/// same time in the same process: it names exactly the sockets a leak would leave behind.
public func gatewaySockets(accepting: Int, dialing: Set<Int>) -> Int {
    let fdDirectory = "/proc/self/fd"
    let ours = Set(((try? FileManager.default.contentsOfDirectory(atPath: fdDirectory)) ?? []).compactMap { name -> String? in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDirectory)/\(name)"),
              target.hasPrefix("socket:[") else { return nil }
        return String(target.dropFirst(8).dropLast())
    })
    var count = 0
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // procfs reports a size of 0: read to EOF rather than by the file's size.
        guard let data = FileHandle(forReadingAtPath: table)?.readDataToEndOfFile() else { continue }
        let text = String(decoding: data, as: UTF8.self)
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9, ours.contains(String(fields[9])) else { continue }
            let local = Int(fields[1].split(separator: ":").last ?? "", radix: 16) ?? -1
            let remote = Int(fields[2].split(separator: ":").last ?? "", radix: 16) ?? -1
            let listening = fields[3] == "0A"
            if (local == accepting && !listening) || dialing.contains(remote) { count += 1 }
        }
    }
    return count
}
