import CMicroHTTPD
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The admin connections libmicrohttpd holds, one slot per socket, for the
/// acceptor's limit.
///
/// The acceptor reserves a slot before `MHD_add_connection`; MHD's
/// connection-started notification marks it started and its
/// connection-closed notification gives it back. MHD starts an added
/// connection on its own thread later, so counting at start would let a
/// burst overshoot the limit. MHD may also drop a queued connection without
/// either notification (pool or limit trouble when it starts it): a slot not
/// started within `startGrace` is given back by `sweep`.
///
/// A request must arrive whole, body included, by its slot's deadline: MHD's
/// idle timeout restarts with every byte, so a client trickling its body
/// would otherwise hold a slot for as long as it likes. `sweep` cuts slots
/// past their deadline, and at the limit the acceptor cuts the oldest slot
/// still receiving (`evictOldestReceiving`), as it does with heads. Cutting
/// is `shutdown`, never `close`: MHD owns the socket and closes it, and it
/// sends the closed notification (which removes the slot, under the same
/// lock) before it closes, so a cut never reaches a reused descriptor.
final class ConnectionGauge: Sendable {
    /// One connection handed to MHD.
    struct Slot: Equatable {
        /// When the acceptor handed it over.
        var reserved: ContinuousClock.Instant
        /// When its request must be complete.
        var deadline: ContinuousClock.Instant
        /// MHD started it (it will send the closed notification).
        var started = false
        /// Its request arrived whole; it is being answered.
        var complete = false
        /// Cut (shut down); MHD has not closed it yet. Not counted.
        var cut = false
    }

    private let slots = Mutex<[Int32: Slot]>([:])
    /// How long a handed-over connection may wait for MHD to start it.
    let startGrace: Duration
    /// How long a handed-over connection has for the rest of its request.
    let requestTime: Duration

    /// An empty gauge.
    init(startGrace: Duration = .seconds(10), requestTime: Duration = .seconds(30)) {
        self.startGrace = startGrace
        self.requestTime = requestTime
    }

    /// Connections handed to MHD, not cut and not yet closed.
    var count: Int { slots.withLock { $0.values.count { !$0.cut } } }

    /// The slot of `fd`, if any (for tests and logs).
    func slot(_ fd: Int32) -> Slot? { slots.withLock { $0[fd] } }

    /// `fd` is about to be handed to MHD. A slot left for the same number
    /// belonged to a connection MHD dropped unannounced: it is replaced.
    func reserve(_ fd: Int32, now: ContinuousClock.Instant = .now) {
        slots.withLock { $0[fd] = Slot(reserved: now, deadline: now + requestTime) }
    }

    /// MHD refused `fd` before starting it.
    func unreserve(_ fd: Int32) { _ = slots.withLock { $0.removeValue(forKey: fd) } }

    /// MHD started the connection on `fd`.
    func started(_ fd: Int32, now: ContinuousClock.Instant = .now) {
        slots.withLock { slots in
            // Given back by the sweep meanwhile: count it again.
            if slots[fd] == nil { slots[fd] = Slot(reserved: now, deadline: now + requestTime) }
            slots[fd]?.started = true
        }
    }

    /// The request on `fd` arrived whole (or was answered before its body).
    func requestComplete(_ fd: Int32) { slots.withLock { $0[fd]?.complete = true } }

    /// MHD closed the connection on `fd` (it closes the socket afterwards).
    func closed(_ fd: Int32) { _ = slots.withLock { $0.removeValue(forKey: fd) } }

    /// Cuts the oldest started connection whose request is still arriving;
    /// false if there is none.
    func evictOldestReceiving() -> Bool {
        slots.withLock { slots in
            let receiving = slots.filter { $0.value.started && !$0.value.complete && !$0.value.cut }
            guard let oldest = receiving.min(by: { $0.value.reserved < $1.value.reserved })?.key else { return false }
            Self.cut(oldest, in: &slots)
            return true
        }
    }

    /// Gives back slots MHD never started within `startGrace`, and cuts
    /// started connections whose request is not complete by its deadline.
    /// Returns how many of each.
    @discardableResult
    func sweep(now: ContinuousClock.Instant = .now) -> (givenBack: Int, cut: Int) {
        slots.withLock { slots in
            var givenBack = 0
            var cut = 0
            for (fd, slot) in slots where !slot.cut {
                if !slot.started, slot.reserved + startGrace <= now {
                    slots[fd] = nil
                    givenBack += 1
                } else if slot.started, !slot.complete, slot.deadline <= now {
                    Self.cut(fd, in: &slots)
                    cut += 1
                }
            }
            return (givenBack, cut)
        }
    }

    private static func cut(_ fd: Int32, in slots: inout [Int32: Slot]) {
        slots[fd]?.cut = true
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// MHD's `MHD_OPTION_NOTIFY_CONNECTION` callback: marks a connection
    /// started, and gives its slot back when MHD closes it. A `static let`
    /// on a nonisolated type (TRAP 2); `cls` is the gauge, kept alive by the
    /// server until MHD stops.
    static let notify: MHD_NotifyConnectionCallback = { cls, connection, socketContext, code in
        guard let cls, let connection, let socketContext else { return }
        let gauge = Unmanaged<ConnectionGauge>.fromOpaque(cls).takeUnretainedValue()
        let fd = Int32(sg_mhd_connection_fd(connection))
        if code.rawValue == 0 {  // MHD_CONNECTION_NOTIFY_STARTED
            // Marks the connection as counted, so only started ones give back.
            socketContext.pointee = cls
            gauge.started(fd)
        } else if code.rawValue == 1 {  // MHD_CONNECTION_NOTIFY_CLOSED
            if socketContext.pointee != nil { gauge.closed(fd) }
            socketContext.pointee = nil
        }
    }
}
