import NIOCore
import SpliceCore

extension Session {
    /// The replica that takes over automatically when the server fails, if any.
    var failoverReplica: Split? {
        splits.first { $0.isReplica && $0.request.failover && $0.state != .dropped }
    }

    /// Promotes a replica on request.
    func failover(to id: SplitID) -> EventLoopFuture<Void> {
        guard let split = splits.first(where: { $0.id == id }) else {
            return eventLoop.makeFailedFuture(APIError.notFound("session \(record.id) has no split \(id)"))
        }
        guard split.isReplica, split.state != .dropped else {
            let why = split.state == .dropped ? "it was dropped" :
                "it is not a client_to_server, on_slow block split that has seen the stream from offset 0"
            return eventLoop.makeFailedFuture(APIError.conflict("split \(id) cannot take over: \(why)"))
        }
        guard !ending, server != nil else {
            return eventLoop.makeFailedFuture(APIError.conflict("session \(record.id) is closing"))
        }
        promote(split, because: "requested over the API")
        return eventLoop.makeSucceededFuture(())
    }

    /// Makes the replica the server: it already has every client byte; of its output, what
    /// the old server had already sent is skipped and the rest forwarded, so a deterministic
    /// server's client sees one unbroken stream.
    func promote(_ split: Split, because why: String) {
        guard let old = server, let leg = split.legs[.clientToServer] else { return }
        let replica = leg.port
        let sent = old.read.value
        leg.backlog.trim(before: sent)
        // A replica behind the old server: what it has yet to say up to `sent`, the client
        // already has.
        let replicaRead = replica.read.value
        replica.skip = sent > replicaRead ? sent - replicaRead : 0
        // Going in: the replica is the writer of the last client-to-server link.
        path(.clientToServer).replaceReceiver(with: replica)
        replica.taps = old.taps.filter { $0 !== leg }
        replica.taps.forEach { $0.port.tapped = replica }
        replica.tapped = nil
        replica.role = .server
        replica.written = record.toServer
        // Coming back: the replica is the reader of the first server-to-client link.
        let link = path(.serverToClient).replaceSender(with: replica)
        server = replica
        splits.removeAll { $0 === split }
        serverAddress = "\(split.request.address)"
        publish()
        old.taps = []
        old.session = nil
        old.socket.close()
        events.publish(.failedOver(session: record.id, split: split.id, server: "\(split.request.address)", reason: why))
        logger.warning("failed over to replica", metadata: [
            "split": "\(split.id)", "replica": "\(split.request.address)", "reason": "\(why)",
            "server_bytes": "\(sent)", "replica_bytes_held": "\(leg.backlog.count)",
        ])
        // Through `from:`, not `over:`: while a drain of the hop the link feeds is under way,
        // the link is paused and the replica's output waits in it, EOF included, for the
        // direct path (see `unsplice`).
        for buffer in leg.backlog.buffers {
            buffer.withUnsafeReadableBytes { forward($0, from: link) }
        }
        leg.backlog.removeAll()
        if replica.eofReceived, !link.paused {
            propagateEOF(over: link)
        }
        replica.socket.resumeRead()
        path(.clientToServer).links.last?.reader.socket.resumeRead()
    }
}
