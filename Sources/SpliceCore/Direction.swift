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
