import NIOCore
import SpliceCore

/// The relay's capture hooks: each is called only while `capture` is set.
extension Session {
    /// Starts recording the session on `sink` (on the session's loop).
    func attachCapture(_ sink: CaptureSink) {
        guard !ending else { return }
        let capture = self.capture ?? SessionCapture()
        self.capture = capture
        guard capture.add(sink) else { return }
        sink.join(record.id)
        publish()
        if paths != nil {
            capture.connected(self)
            capture.openAll(on: sink, self)
        }
    }

    /// The server is connected: listener captures take the session in, and every capture
    /// draws its points.
    func captureServerConnected() {
        for sink in context.captures.active { attachCapture(sink) }
        capture?.connected(self)
    }

    /// Bytes passed over `link`.
    func capturePassed(_ bytes: UnsafeRawBufferPointer, over link: Link) {
        guard let capture = liveCapture else { return }
        capture.passed(bytes, over: link, self)
    }

    /// `port`'s peer sent EOF.
    func captureInputClosed(_ port: Port) {
        liveCapture?.inputClosed(port, self)
    }

    /// The gateway half-closes `port`'s output.
    func captureOutputClosing(_ port: Port) {
        liveCapture?.outputClosing(port, self)
    }

    /// The session ends: captures close its connections (and a session capture its file).
    func captureEnded(_ reason: CloseReason) {
        guard let capture else { return }
        capture.ended(reason, self)
        self.capture = nil
    }

    /// The capture state, or nil (and dropped) once every reader has gone.
    private var liveCapture: SessionCapture? {
        guard let capture else { return nil }
        if capture.prune() {
            self.capture = nil
            publish()
            return nil
        }
        return capture
    }
}
