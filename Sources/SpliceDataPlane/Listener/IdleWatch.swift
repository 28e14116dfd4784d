import NIOCore
import SpliceCore

/// Closes a session with reason `idle` once no byte has been delivered in either direction
/// for `timeout`.
///
/// It samples the session's delivered-byte counters a few times per timeout instead of
/// touching every read, so an idle session is closed between `timeout` and 1¼ × `timeout`
/// after its last byte.
enum IdleWatch {
    /// Starts watching `session` on its loop; the watch stops by itself once the session ends.
    static func start(_ session: Session, timeout: TimeAmount) {
        let eventLoop = session.eventLoop
        let tick = TimeAmount.nanoseconds(max(timeout.nanoseconds / 4, TimeAmount.milliseconds(5).nanoseconds))
        let state = NIOLoopBoundBox(
            State(session: session, lastTotal: 0, lastChange: .now()), eventLoop: eventLoop)
        eventLoop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { task in
            guard let session = state.value.session, !session.ending else { return task.cancel() }
            let bytes = session.record.bytes
            let total = bytes.clientToServer &+ bytes.serverToClient
            let now = NIODeadline.now()
            // A handoff under way holds the bytes back: that is no idleness of the session's.
            if total != state.value.lastTotal || session.handoff.isHeld {
                state.value.lastTotal = total
                state.value.lastChange = now
            } else if now - state.value.lastChange >= timeout {
                task.cancel()
                session.logger.info("session idle", metadata: ["idle_timeout_ms": "\(timeout.nanoseconds / 1_000_000)"])
                session.end(.idle)
            }
        }
    }

    private struct State {
        // Weak: the watch must not keep an ended session alive until its next tick.
        weak var session: Session?
        var lastTotal: UInt64
        var lastChange: NIODeadline
    }
}
