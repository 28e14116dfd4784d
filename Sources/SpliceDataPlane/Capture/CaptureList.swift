import SpliceCore
import Synchronization

/// The captures recording a session, as the API lists them on the session object.
final class CaptureList: Sendable {
    private let sinks = Mutex<[CaptureSink]>([])

    func add(_ sink: CaptureSink) {
        sinks.withLock { $0.append(sink) }
    }

    func removeAll() {
        sinks.withLock { $0.removeAll() }
    }

    /// The live captures' figures (one that lost its reader is left out).
    var snapshots: [CaptureSnapshot] {
        sinks.withLock { $0 }.filter(\.isActive).map(\.snapshot)
    }
}
