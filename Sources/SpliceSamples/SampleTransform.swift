/// A transform a sample mediator applies to every byte stream it is handed.
public enum SampleTransform: Sendable, Hashable, CustomStringConvertible {
    /// Forwards bytes unchanged.
    case identity
    /// ASCII `a`–`z` to `A`–`Z`.
    case upper
    /// ASCII `A`–`Z` to `a`–`z`.
    case lower
    /// Rotates ASCII letters by 13 (its own inverse).
    case rot13
    /// Flips every bit of every byte (its own inverse).
    case invert
    /// Compresses into a raw deflate stream, sync-flushed after every read so output flows.
    case deflate
    /// Decompresses what `deflate` produces.
    case inflate
    /// Forwards bytes unchanged after this many milliseconds.
    case delay(milliseconds: Int)

    /// The longest delay `delay=MS` accepts, in milliseconds.
    public static let maximumDelayMilliseconds = 60_000

    /// The names accepted by `init(parsing:)`, for help texts.
    public static let names = ["identity", "upper", "lower", "rot13", "invert", "deflate", "inflate", "delay=MS"]

    /// Parses `identity`, `upper`, `lower`, `rot13`, `invert`, `deflate`, `inflate` or `delay=MS`.
    public init(parsing text: String) throws(SampleTransformError) {
        switch text {
        case "identity": self = .identity
        case "upper": self = .upper
        case "lower": self = .lower
        case "rot13": self = .rot13
        case "invert": self = .invert
        case "deflate": self = .deflate
        case "inflate": self = .inflate
        default:
            guard text.hasPrefix("delay=") else { throw .unknown(text) }
            let digits = text.dropFirst("delay=".count)
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let milliseconds = Int(digits), milliseconds <= Self.maximumDelayMilliseconds
            else { throw .badDelay(text) }
            self = .delay(milliseconds: milliseconds)
        }
    }

    /// The name `init(parsing:)` reads back.
    public var description: String {
        switch self {
        case .identity: "identity"
        case .upper: "upper"
        case .lower: "lower"
        case .rot13: "rot13"
        case .invert: "invert"
        case .deflate: "deflate"
        case .inflate: "inflate"
        case .delay(let milliseconds): "delay=\(milliseconds)"
        }
    }
}
