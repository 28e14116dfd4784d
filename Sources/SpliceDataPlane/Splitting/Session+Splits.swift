import NIOCore
import SpliceCore
import SpliceIO

extension Session {
    /// Connects to the recipient, then starts copying each requested direction from the
    /// byte its endpoint has been delivered so far. On failure the session is unchanged.
    func addSplit(_ id: SplitID, request: SplitRequest) -> EventLoopFuture<SplitSnapshot> {
        let directions = request.directions.directions
        if let reason = refusal(directions) {
            return eventLoop.makeFailedFuture(APIError.conflict(reason))
        }
        if request.failover {
            guard request.canBeReplica else {
                return eventLoop.makeFailedFuture(APIError.invalid(
                    "failover needs a replica: direction client_to_server with on_slow block"))
            }
            guard (path(.clientToServer).links.last?.offset ?? 1) == 0 else {
                return eventLoop.makeFailedFuture(APIError.conflict(
                    "session \(record.id) has already moved client bytes; a replica must see the stream from offset 0"))
            }
        }
        return openLegs(directions, peer: "split recipient \(request.address)", open: {
            SplitConnector.connect(request, on: self.loop)
        }, discard: { $0.close() }, apply: { opened in
            let split = Split(id: id, request: request)
            for (direction, socket) in opened {
                self.attach(socket, to: split, direction: direction)
            }
            split.isReplica = request.canBeReplica && split.legs[.clientToServer]?.stats.fromOffset == 0
            self.splits.append(split)
            self.publish()
            self.metrics.splitAdded()
            self.events.publish(.splitAdded(session: self.record.id, split.view.snapshot))
            self.logger.info("split added", metadata: [
                "split": "\(id)", "recipient": "\(request.address)",
                "from_offset": "\(split.legs.mapValues(\.stats.fromOffset))",
            ])
            if let dead = split.legs.values.first(where: { !$0.port.socket.isOpen }) {
                self.drop(split, reason: "recipient closed before the split took effect (\(dead.port.role))")
            }
            // What the recipient sent before it was attached (a replica's early reply).
            if split.state != .dropped {
                split.legs.values.forEach { $0.port.socket.resumeRead() }
            }
            return split.view.snapshot
        })
    }

    private func attach(_ socket: RelaySocket, to split: Split, direction: Direction) {
        let path = path(direction)
        guard let sink = path.sink, let last = path.links.last else { return }
        let stats = SplitLegCounters(fromOffset: last.offset, delivered: sink.written)
        let port = Port(role: .split(split.id, direction), socket: socket, session: self,
                        written: stats.sent, read: stats.discarded)
        port.tapped = sink
        let leg = SplitLeg(direction: direction, port: port, stats: stats, policy: split.request.onSlow)
        sink.taps.append(leg)
        split.legs[direction] = leg
        port.socket.resumeRead()
    }

    /// Copies delivered bytes to a direction's recipients; a `drop` recipient that falls
    /// past its buffer is detached, never slowing the session.
    func copy(_ bytes: UnsafeRawBufferPointer, to taps: [SplitLeg]) {
        for tap in taps {
            tap.port.written.add(bytes.count)
            tap.port.write(bytes)
            if tap.policy == .drop, !tap.port.isWritable, let split = split(of: tap.port) {
                drop(split, reason: "slow: more than \(split.request.bufferBytes) bytes behind")
            }
        }
    }

    /// Bytes a recipient sent back: a replica's are held for a failover, the rest discarded.
    func splitPort(_ port: Port, received bytes: UnsafeRawBufferPointer) {
        guard let split = split(of: port), case .split(_, let direction) = port.role,
              let leg = split.legs[direction] else { return }
        let start = port.read.value
        port.read.add(bytes.count)
        guard split.isReplica, split.state != .dropped, let server else { return }
        leg.backlog.append(bytes, at: start)
        // Alignment is by the server's raw output: what it has sent, the replica need not.
        leg.backlog.trim(before: server.read.value)
        if leg.backlog.count > split.request.bufferBytes {
            drop(split, reason: "replica_ahead")
        }
    }

    /// The split a recipient port belongs to.
    func split(of port: Port) -> Split? {
        guard case .split(let id, _) = port.role else { return nil }
        return splits.first { $0.id == id }
    }

    /// Passes the direction's EOF on to its recipients once their copies are flushed.
    func closeTaps(of sink: Port) {
        for tap in sink.taps where !tap.port.outputClosing {
            tap.port.outputClosing = true
            tap.port.socket.closeOutputAfterFlush { result in
                guard !self.ending, let split = self.split(of: tap.port) else { return }
                if case .failure = result {
                    self.drop(split, reason: "recipient failed while flushing")
                } else if split.legs.values.allSatisfy(\.port.outputClosing), split.state == .active {
                    split.state = .closed
                    self.publish()
                }
            }
        }
    }

    /// Detaches a split: its connections close, the session goes on without it.
    func drop(_ split: Split, reason: String) {
        guard split.state != .dropped else { return }
        split.state = .dropped
        logger.warning("split dropped", metadata: ["split": "\(split.id)", "reason": "\(reason)"])
        for leg in split.legs.values {
            let unsent = leg.port.socket.pendingBytes
            leg.stats.unsentAtDrop.store(UInt64(unsent), ordering: .relaxed)
            detachTap(leg)
        }
        split.dropReason = reason
        publish()
        let snapshot = split.view.snapshot
        metrics.splitDropped(bytes: snapshot.legs.values.reduce(UInt64(0)) { $0 + $1.bytesDropped })
        events.publish(.splitDropped(session: record.id, snapshot))
    }

    /// Removes a split on request.
    func removeSplit(_ id: SplitID) -> EventLoopFuture<Void> {
        guard let index = splits.firstIndex(where: { $0.id == id }) else {
            return eventLoop.makeFailedFuture(APIError.notFound("session \(record.id) has no split \(id)"))
        }
        let split = splits.remove(at: index)
        split.legs.values.forEach(detachTap)
        publish()
        logger.info("split removed", metadata: ["split": "\(id)"])
        events.publish(.splitRemoved(session: record.id, split: id))
        return eventLoop.makeSucceededFuture(())
    }

    private func detachTap(_ leg: SplitLeg) {
        let port = leg.port
        if let sink = port.tapped {
            sink.taps.removeAll { $0 === leg }
            // A blocking recipient may have been what held the session back.
            sink.inLink?.reader.socket.resumeRead()
        }
        port.tapped = nil
        port.session = nil
        leg.backlog.removeAll()
        port.socket.close()
    }
}
