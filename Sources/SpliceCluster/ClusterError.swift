/// Why the cluster's store cannot be used (a bad URL, an unreachable or broken database).
public struct ClusterError: Error, Sendable, CustomStringConvertible {
    public let description: String

    /// An error saying `description`.
    public init(_ description: String) {
        self.description = description
    }
}
