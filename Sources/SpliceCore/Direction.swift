/// One direction of a session's byte stream.
public enum Direction: String, Sendable, Hashable, CaseIterable, Codable {
    /// Bytes the client sends, towards the server.
    case clientToServer = "client_to_server"
    /// Bytes the server sends, towards the client.
    case serverToClient = "server_to_client"

    /// The other direction.
    public var reversed: Direction { self == .clientToServer ? .serverToClient : .clientToServer }
}

/// The directions a request names: one of them, or `both` (one of each).
public enum DirectionSelection: String, Sendable, Hashable, CaseIterable {
    case clientToServer = "client_to_server"
    case serverToClient = "server_to_client"
    case both

    /// The directions selected, client-to-server first.
    public var directions: [Direction] {
        switch self {
        case .clientToServer: [.clientToServer]
        case .serverToClient: [.serverToClient]
        case .both: [.clientToServer, .serverToClient]
        }
    }
}

extension Direction: CustomStringConvertible, CustomDebugStringConvertible {
    /// The API's name (`client_to_server`), in logs too: a dictionary keyed by direction
    /// otherwise prints as `[SpliceCore.Direction.clientToServer: 12]`.
    public var description: String { rawValue }
    /// The same as `description`, which collections use for their elements and keys.
    public var debugDescription: String { rawValue }
}
