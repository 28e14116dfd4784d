import SpliceCapture
import SpliceCore

extension CaptureSink {
    /// Turns a gateway event about a recorded session into packet comments.
    func note(_ event: GatewayEvent) {
        switch event {
        case .hopSpliced(let session, let hop):
            for (direction, leg) in hop.legs {
                comment("\(hop.id) (\(hop.target)) spliced into \(direction.rawValue) at offset \(leg.splicedAt)",
                        from: direction.sender, session: session)
            }
        case .hopRemoved(let session, let hop, let report):
            for (direction, offset) in report.removedAt {
                comment("\(hop) removed from \(direction.rawValue) at offset \(offset), \(report.drained[direction] ?? 0) bytes drained",
                        from: direction.sender, session: session)
            }
        case .hopFailed(let session, let hop, let reason, let policy):
            comment("\(hop) failed (\(reason)); on_failure \(policy.rawValue)", from: .initiator, session: session)
        case .splitAdded(let session, let split):
            for (direction, leg) in split.legs {
                comment("\(split.id) split of \(direction.rawValue) to \(split.request.address) from offset \(leg.fromOffset)",
                        from: direction.sender, session: session)
            }
        case .splitDropped(let session, let split):
            for (direction, leg) in split.legs {
                comment("\(split.id) split of \(direction.rawValue) dropped (\(split.reason ?? "no reason")) after \(leg.bytesSent) bytes",
                        from: direction.sender, session: session)
            }
        case .splitRemoved(let session, let split):
            comment("\(split) split removed", from: .initiator, session: session)
        case .failedOver(let session, let split, let server, let reason):
            comment("failed over to \(split) (\(server)): \(reason)", from: .responder, session: session)
        case .listenerAdded, .listenerRemoved, .sessionOpened, .sessionClosed, .handoff:
            break
        }
    }
}
