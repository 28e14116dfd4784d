import NIOCore
import SpliceCore

extension Gateway {
    /// Starts recording one session into `output`, from now until the session ends or the
    /// reader leaves. 404 at once for an unknown session; the future fails with 404 if the
    /// session ends before the capture is attached.
    public func startingCapture(session id: SessionID, request: CaptureRequest, output: any CaptureOutput)
        throws(APIError) -> GatewayFuture<CaptureSnapshot>
    {
        guard let record = registry.record(id) else { throw .notFound("no session \(id)") }
        let (sink, token) = makeSink(listener: nil, request: request, output: output)
        let attached = record.changingSession { session in
            session.attachCapture(sink)
            return session.eventLoop.makeSucceededFuture(sink.snapshot)
        }
        // Nobody will read a capture of a session that ended first.
        attached.whenFailure { [events] _ in
            events.cancel(token)
            sink.close()
        }
        return GatewayFuture(attached)
    }

    /// Starts recording every session of a listener, those open now and those that open
    /// while it runs, into one file; it ends when the listener is removed or the reader
    /// leaves. 404 for an unknown listener.
    public func startCapture(listener id: ListenerID, request: CaptureRequest, output: any CaptureOutput)
        throws(APIError) -> CaptureSnapshot
    {
        let listener = try lookUpListener(id)
        let (sink, _) = makeSink(listener: id, request: request, output: output)
        // Added first: a session connecting meanwhile joins through the list, one already
        // connected through the registry, and one doing both is attached once.
        listener.captures.add(sink)
        output.onReaderGone { [captures = listener.captures] in captures.remove(sink) }
        for record in registry.records(listener: id) {
            _ = record.changingSession { session in
                session.attachCapture(sink)
                return session.eventLoop.makeSucceededVoidFuture()
            }
        }
        return sink.snapshot
    }

    /// A new capture whose packet comments come from the gateway's events.
    private func makeSink(listener: ListenerID?, request: CaptureRequest, output: any CaptureOutput)
        -> (CaptureSink, EventHub.Token)
    {
        let id = CaptureID(number: nextCaptureNumber())
        let sink = CaptureSink(id: id, listener: listener, request: request, output: output)
        // Events are delivered on the loop of the session they concern, as it acts: the
        // comment goes on the next packet that session sends at each point.
        let token = events.subscribe { _, event in sink.note(event) }
        output.onReaderGone { [events] in events.cancel(token) }
        return (sink, token)
    }
}
