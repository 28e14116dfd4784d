import SpliceCore
import Synchronization

/// Per-direction byte counters a session updates on its event loop and the API reads from
/// any thread, without a lock.
final class SessionCounters: Sendable {
    private let clientToServer = Atomic<UInt64>(0)
    private let serverToClient = Atomic<UInt64>(0)

    init() {}

    /// Adds bytes delivered in one direction.
    func add(_ count: Int, _ direction: Direction) {
        switch direction {
        case .clientToServer: clientToServer.wrappingAdd(UInt64(count), ordering: .relaxed)
        case .serverToClient: serverToClient.wrappingAdd(UInt64(count), ordering: .relaxed)
        }
    }

    /// The current totals.
    var snapshot: ByteCounts {
        ByteCounts(clientToServer: clientToServer.load(ordering: .relaxed),
                   serverToClient: serverToClient.load(ordering: .relaxed))
    }
}
