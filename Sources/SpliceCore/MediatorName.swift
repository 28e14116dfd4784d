/// A mediator's name: the registry's key, chosen by whoever registers the mediator.
///
/// Its own type, not a `String`, so that it cannot be swapped with the strings that travel
/// beside it (a hop's target address or command line, a listener's name). Registration
/// checks the spelling (`MediatorSpec(json:)`); a splice may name any text, which then
/// matches no registered mediator.
public struct MediatorName: Sendable, Hashable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The name as registered.
    public let text: String

    /// A name from its text.
    public init(_ text: String) {
        self.text = text
    }

    public init(stringLiteral text: String) {
        self.init(text)
    }

    public var description: String { text }

    public static func < (lhs: MediatorName, rhs: MediatorName) -> Bool {
        lhs.text < rhs.text
    }
}
