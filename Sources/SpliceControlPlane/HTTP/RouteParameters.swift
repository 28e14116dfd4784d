import SpliceCore

/// The `{name}` values a route matched, percent-decoded.
public struct RouteParameters: Sendable, Equatable {
    private let values: [String: String]

    /// Parameters from a dictionary.
    public init(_ values: [String: String] = [:]) { self.values = values }

    /// The value of `name`, or nil if the pattern has no such parameter.
    public subscript(name: String) -> String? { values[name] }

    /// The value of `name`; a missing one is a programming error reported as 404.
    public func require(_ name: String) throws(APIError) -> String {
        guard let value = values[name] else { throw .notFound("missing path parameter '\(name)'") }
        return value
    }
}
