import Synchronization

/// A response that is not known yet: a handler that needs the data plane returns one at
/// once and completes it, from any thread, when the data plane answers.
///
/// Meanwhile the server suspends the request's connection instead of holding a server
/// thread; `complete` resumes it, and MHD's next call for the request queues the response.
/// A client that leaves while its request waits is noticed only after the resume (MHD does
/// not watch suspended sockets); the response is then dropped. Once the server has let go
/// of the request (`release`), completing touches nothing but this object.
public final class PendingResponse: ParkedResponse {
    private struct State: Sendable {
        var response: HTTPResponse?
        var aborted = false
        var connection = SuspendableConnection()
        var observers: [@Sendable (HTTPResponse) -> Void] = []
    }

    /// What the server does next with the request's connection.
    enum Step: Sendable {
        /// Queue this response.
        case respond(HTTPResponse)
        /// Nothing yet: the connection is suspended until `complete` resumes it.
        case wait
        /// Close the connection unanswered (the server is stopping).
        case close
    }

    private let state = Mutex(State())

    /// A response still to come.
    public init() {}

    /// Sets the response and wakes the connection waiting for it. Only the first call
    /// counts; later ones are ignored.
    public func complete(_ response: HTTPResponse) {
        let observers = state.withLock { state -> [@Sendable (HTTPResponse) -> Void] in
            guard state.response == nil else { return [] }
            state.response = response
            state.connection.resume()
            defer { state.observers = [] }
            return state.observers
        }
        for observer in observers { observer(response) }
    }

    /// Whether the response is set (it may still be on its way to the client).
    var isAnswered: Bool { state.withLock { $0.response != nil } }

    /// Runs `body` with the response once it is set (at once if it is), whether or not the
    /// client is still there to receive it.
    public func whenComplete(_ body: @escaping @Sendable (HTTPResponse) -> Void) {
        let response = state.withLock { state -> HTTPResponse? in
            if state.response == nil { state.observers.append(body) }
            return state.response
        }
        if let response { body(response) }
    }

    /// Called by the access handler, each time MHD calls it for the request: the response
    /// if it is set, else the connection is suspended until it is (MHD thread).
    func park(on connection: OpaquePointer) -> Step {
        state.withLock { state in
            if state.aborted { return .close }
            if let response = state.response { return .respond(response) }
            state.connection.attach(connection)
            // A `complete` takes the same lock, so it sees the suspension and resumes it.
            return state.connection.suspend() ? .wait : .close
        }
    }

    /// Wakes the connection to be closed unanswered (server stopping).
    func abort() {
        state.withLock { state in
            state.aborted = true
            state.connection.resume()
        }
    }

    /// MHD has finished the request (answered, or the client gone): the connection must not
    /// be touched any more.
    func release() {
        for callback in state.withLock({ $0.connection.release() }) { callback() }
    }

    /// Runs `body` once the server has let go of the request (at once if it has).
    func onRelease(_ body: @escaping @Sendable () -> Void) {
        if !state.withLock({ $0.connection.onRelease(body) }) { body() }
    }
}
