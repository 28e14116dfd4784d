import Synchronization

/// The captures recording every session of one listener; a session joins them once its
/// server is connected.
final class ListenerCaptures: Sendable {
    private let sinks = Mutex<[CaptureSink]>([])

    /// The captures still recording.
    var active: [CaptureSink] {
        sinks.withLock { sinks in
            sinks.removeAll { !$0.isActive }
            return sinks
        }
    }

    /// Starts offering a capture to the listener's new sessions.
    func add(_ sink: CaptureSink) {
        sinks.withLock { $0.append(sink) }
    }

    /// Stops offering a capture (its reader left).
    func remove(_ sink: CaptureSink) {
        sinks.withLock { $0.removeAll { $0 === sink } }
    }

    /// Ends every capture (the listener is going away).
    func closeAll() {
        for sink in sinks.withLock({ sinks in defer { sinks.removeAll() }; return sinks }) { sink.close() }
    }
}
