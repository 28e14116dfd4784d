/// Issues short, readable, never-reused identifiers such as `s17` or `h3`.
///
/// One type per kind (`SessionID`, `HopID`, `SplitID`, `ListenerID`), so a hop id passed
/// where a session id belongs does not compile. The kind's prefix letter is part of the
/// text form only; the numeric part orders them, which is what list cursors rely on.
public struct Identifier<Kind: IdentifierKind>: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The sequence number, unique within the kind for the process's life.
    public let number: UInt64

    /// An identifier from its sequence number.
    public init(number: UInt64) {
        self.number = number
    }

    /// Parses `s17`-style text with this kind's prefix; nil when it is not one.
    public init?(_ text: String) {
        let digits = text.dropFirst()
        // Digits only, no sign, no leading zero: one id has one spelling.
        guard text.first == Kind.prefix, (1...20).contains(digits.count), digits.first != "0",
              digits.allSatisfy({ $0.isASCII && $0.isNumber }), let number = UInt64(digits) else { return nil }
        self.init(number: number)
    }

    public var description: String { "\(Kind.prefix)\(number)" }

    public static func < (lhs: Identifier, rhs: Identifier) -> Bool {
        lhs.number < rhs.number
    }
}

/// A kind of identifier: a caseless tag that fixes the prefix letter of its text form.
public protocol IdentifierKind: Sendable {
    /// The letter an identifier of this kind starts with.
    static var prefix: Character { get }
    /// What an identifier of this kind names, for messages (`no session s9`).
    static var noun: String { get }
}

/// The tags of the identifier kinds; never instantiated.
public enum IdentifierKinds {
    /// A session: `s17`.
    public enum Session: IdentifierKind {
        public static var prefix: Character { "s" }
        public static var noun: String { "session" }
    }
    /// A mediator hop within a session: `h3`.
    public enum Hop: IdentifierKind {
        public static var prefix: Character { "h" }
        public static var noun: String { "hop" }
    }
    /// A split recipient of a session: `x1`.
    public enum Split: IdentifierKind {
        public static var prefix: Character { "x" }
        public static var noun: String { "split" }
    }
    /// A live capture: `c4`.
    public enum Capture: IdentifierKind {
        public static var prefix: Character { "c" }
        public static var noun: String { "capture" }
    }
    /// A listener: `l2`.
    public enum Listener: IdentifierKind {
        public static var prefix: Character { "l" }
        public static var noun: String { "listener" }
    }
}

/// Names a session (`s17`).
public typealias SessionID = Identifier<IdentifierKinds.Session>
/// Names a mediator hop within a session (`h3`).
public typealias HopID = Identifier<IdentifierKinds.Hop>
/// Names a split recipient of a session (`x1`).
public typealias SplitID = Identifier<IdentifierKinds.Split>
/// Names a live capture (`c4`).
public typealias CaptureID = Identifier<IdentifierKinds.Capture>
/// Names a listener (`l2`).
public typealias ListenerID = Identifier<IdentifierKinds.Listener>
