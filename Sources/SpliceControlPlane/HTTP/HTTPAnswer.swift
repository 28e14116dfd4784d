/// What a handler gives back: a response at once, or one the data plane completes later.
public enum HTTPAnswer: Sendable {
    /// The response, known now.
    case now(HTTPResponse)
    /// A response to come; the server parks the connection until it is completed.
    case later(PendingResponse)

    /// Runs `body` with the response once it is known (at once for `now`).
    public func whenComplete(_ body: @escaping @Sendable (HTTPResponse) -> Void) {
        switch self {
        case .now(let response): body(response)
        case .later(let pending): pending.whenComplete(body)
        }
    }
}
