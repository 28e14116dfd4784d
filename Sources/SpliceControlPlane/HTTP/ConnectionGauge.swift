import CMicroHTTPD
import Synchronization

/// How many admin connections libmicrohttpd holds, for the acceptor's limit.
///
/// The acceptor reserves a slot before `MHD_add_connection`; MHD's
/// connection-closed notification gives it back. MHD starts an added
/// connection on its own thread later, so counting at start would let a
/// burst overshoot the limit.
final class ConnectionGauge: Sendable {
    private let held = Atomic<Int>(0)

    /// An empty gauge.
    init() {}

    /// Connections handed to MHD and not yet closed.
    var count: Int { held.load(ordering: .relaxed) }

    /// A connection is about to be handed to MHD.
    func reserve() { held.add(1, ordering: .relaxed) }

    /// MHD refused the connection before starting it.
    func unreserve() { held.subtract(1, ordering: .relaxed) }

    /// MHD's `MHD_OPTION_NOTIFY_CONNECTION` callback: gives a slot back when a
    /// connection MHD started is closed. A `static let` on a nonisolated type
    /// (TRAP 2); `cls` is the gauge, kept alive by the server until MHD stops.
    static let notify: MHD_NotifyConnectionCallback = { cls, _, socketContext, code in
        guard let cls, let socketContext else { return }
        let gauge = Unmanaged<ConnectionGauge>.fromOpaque(cls).takeUnretainedValue()
        if code.rawValue == 0 {  // MHD_CONNECTION_NOTIFY_STARTED
            // Marks the connection as counted, so only started ones give back.
            socketContext.pointee = cls
        } else if code.rawValue == 1 {  // MHD_CONNECTION_NOTIFY_CLOSED
            if socketContext.pointee != nil { gauge.unreserve() }
            socketContext.pointee = nil
        }
    }
}
