/// A response whose connection the server may hold suspended: an event stream between
/// events, or a `PendingResponse` until the data plane answers. The server keeps them in
/// one table, so that stopping can wake every one (MHD aborts the process when a daemon is
/// stopped with a connection still suspended).
protocol ParkedResponse: AnyObject, Sendable {
    /// Ends it at once, resuming its connection so that MHD closes it (server stopping).
    func abort()
    /// Runs `body` once the server has let go of it (at once if it has).
    func onRelease(_ body: @escaping @Sendable () -> Void)
}
