import CMicroHTTPD

/// The MHD connection a response is answered on, suspended while the response waits for
/// something (the next event of a stream, the data plane's answer) and resumed from any
/// thread when it arrives; and, once MHD lets go of it, released for good. Shared by
/// `StreamSource` and `PendingResponse`.
///
/// A value that lives inside its owner's lock: the owner suspends from an MHD callback and
/// resumes from a producer under that one lock, so a resume can never come before the
/// suspend it answers, nor after MHD has let go of the connection (`detach`).
/// `MHD_resume_connection` may be called from any thread: the daemon runs its own polling
/// threads with an inter-thread channel (`MHD_ALLOW_SUSPEND_RESUME` implies `MHD_USE_ITC`).
struct SuspendableConnection: Sendable {
    private var connection: OpaqueHandle?
    private var suspended = false
    private var releaseCallbacks: [@Sendable () -> Void] = []
    /// Whether MHD has let go of the connection (`release`).
    private(set) var isReleased = false

    /// An empty one: not bound to a connection yet.
    init() {}

    /// Binds to the connection the response is answered on (MHD thread).
    mutating func attach(_ connection: OpaquePointer) {
        self.connection = OpaqueHandle(connection)
    }

    /// Suspends the connection until `resume`; false, and nothing done, when none is bound
    /// (never attached, or detached). Only from an access handler or content reader, the
    /// two places MHD documents as safe.
    mutating func suspend() -> Bool {
        guard let connection else { return false }
        suspended = true
        MHD_suspend_connection(connection.pointer)
        return true
    }

    /// Resumes the connection if it is suspended (any thread).
    mutating func resume() {
        guard suspended, let connection else { return }
        suspended = false
        MHD_resume_connection(connection.pointer)
    }

    /// MHD has let go of the connection (request completed, response freed): nothing may
    /// touch it any more. Returns the release callbacks, for the owner to run once it has
    /// left its lock.
    mutating func release() -> [@Sendable () -> Void] {
        connection = nil
        suspended = false
        isReleased = true
        defer { releaseCallbacks = [] }
        return releaseCallbacks
    }

    /// Keeps `body` for `release`; false, and nothing kept, when that has happened (the
    /// owner then runs it at once, outside its lock).
    mutating func onRelease(_ body: @escaping @Sendable () -> Void) -> Bool {
        if isReleased { return false }
        releaseCallbacks.append(body)
        return true
    }
}
