/// Why the cluster's store cannot be used (a bad URL, an unreachable or broken database).
public struct ClusterError: Error, Sendable, CustomStringConvertible {
    public let description: String
    /// The link failed after COMMIT was sent: the change may or may not be in the database.
    public let outcomeUnknown: Bool
    /// Trying again will not help (TLS the server refuses, a certificate that does not pass).
    public let permanent: Bool

    /// An error saying `description`.
    public init(_ description: String, outcomeUnknown: Bool = false, permanent: Bool = false) {
        self.description = description
        self.outcomeUnknown = outcomeUnknown
        self.permanent = permanent
    }
}
