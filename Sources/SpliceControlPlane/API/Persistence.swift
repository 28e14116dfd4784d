import SpliceCore

/// What the API calls after it changed the runtime configuration (listeners, mediators) and
/// before it answers: the executable writes its state file there.
public struct Persistence: Sendable {
    private let save: @Sendable () throws(APIError) -> Void

    /// Persistence through `save`, which must leave the saved state matching the gateway's.
    public init(_ save: @escaping @Sendable () throws(APIError) -> Void) {
        self.save = save
    }

    /// Nothing is saved.
    public static var none: Persistence { Persistence {} }

    /// Saves the current configuration.
    func callAsFunction() throws(APIError) {
        try save()
    }
}
