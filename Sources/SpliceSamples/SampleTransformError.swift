/// A transform name `SampleTransform(parsing:)` does not accept.
public struct SampleTransformError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Reason: Equatable, Sendable {
        case unknown(String)
        case badDelay(String)
    }

    private let reason: Reason

    /// A name that is none of the transforms.
    public static func unknown(_ text: String) -> SampleTransformError { .init(reason: .unknown(text)) }

    /// A `delay=` whose milliseconds are not an integer in 0…60000.
    public static func badDelay(_ text: String) -> SampleTransformError { .init(reason: .badDelay(text)) }

    /// What was wrong, for an operator.
    public var description: String {
        switch reason {
        case .unknown(let text):
            "unknown transform '\(text)'; expected one of \(SampleTransform.names.joined(separator: ", "))"
        case .badDelay(let text):
            "'\(text)': delay=MS needs MS an integer from 0 to \(SampleTransform.maximumDelayMilliseconds)"
        }
    }
}
