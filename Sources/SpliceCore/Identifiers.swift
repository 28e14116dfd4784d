/// Issues short, readable, never-reused identifiers such as `s17` or `h3`.
///
/// The numeric part orders them, which is what list cursors rely on.
public struct Identifier: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The prefix naming the kind (`l` listener, `s` session, `h` hop, `x` split).
    public let prefix: Character
    /// The sequence number, unique within the prefix for the process's life.
    public let number: UInt64

    /// An identifier from its parts.
    public init(prefix: Character, number: UInt64) {
        self.prefix = prefix
        self.number = number
    }

    /// Parses `s17`-style text with the expected prefix; nil when it is not one.
    public init?(_ text: String, prefix: Character) {
        let digits = text.dropFirst()
        // Digits only, no sign, no leading zero: one id has one spelling.
        guard text.first == prefix, (1...20).contains(digits.count), digits.first != "0",
              digits.allSatisfy({ $0.isASCII && $0.isNumber }), let number = UInt64(digits) else { return nil }
        self.init(prefix: prefix, number: number)
    }

    public var description: String { "\(prefix)\(number)" }

    public static func < (lhs: Identifier, rhs: Identifier) -> Bool {
        lhs.number < rhs.number
    }
}
