import SpliceCore
import Synchronization

/// The captures recording a session, as the API lists them on the session object.
///
/// A value held inline in the session's record: a session nobody captures pays for an
/// empty array and a lock word, not an object of its own.
struct CaptureList: ~Copyable, Sendable {
    private let sinks = Mutex<[CaptureSink]>([])

    /// Lists a capture that joined the session.
    func add(_ sink: CaptureSink) {
        sinks.withLock { $0.append(sink) }
    }

    /// Forgets them all (the session ended, or every reader left).
    func removeAll() {
        sinks.withLock { $0.removeAll() }
    }

    /// The live captures' figures (one that lost its reader is left out).
    var snapshots: [CaptureSnapshot] {
        let all = sinks.withLock { $0 }
        return all.isEmpty ? [] : all.filter(\.isActive).map(\.snapshot)
    }
}
