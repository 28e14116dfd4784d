import NIOCore
import SpliceCore
import SpliceIO

extension Session {
    /// Why a splice, removal or split of `directions` is refused now, or nil to go ahead.
    func refusal(_ directions: [Direction]) -> String? {
        machine.refusal(directions, session: record.id) { direction in
            self.path(direction).links.first?.reader.eofReceived ?? true
        }
    }

    /// Opens the mediator's legs, then splices them all at once at the current byte
    /// boundary of each direction. On any failure the session is left as it was.
    ///
    /// A registered mediator's use is taken here, on the session's loop, and given back
    /// unless the hop ends up spliced.
    func splice(_ id: HopID, request: HopRequest, allowAdHoc: Bool) -> EventLoopFuture<HopSnapshot> {
        let spec: MediatorSpec
        let lease: MediatorLease?
        do {
            (spec, lease) = try mediators.resolve(request.target, allowAdHoc: allowAdHoc)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let target = spec.target
        let refuse = { (error: APIError) -> EventLoopFuture<HopSnapshot> in
            lease?.release()
            return self.eventLoop.makeFailedFuture(error)
        }
        let directions = request.directions.directions
        if let reason = refusal(directions) { return refuse(.conflict(reason)) }
        guard let client, let server else { return refuse(.conflict("session \(record.id) is still connecting")) }
        if let position = request.position, position > hops.count {
            return refuse(.conflict("position \(position) is past the end of the session's \(hops.count) hop(s)"))
        }
        let addresses = (client: client.socket.remoteAddress, server: server.socket.remoteAddress)
        return openLegs(directions, peer: "mediator \(target)", open: {
            MediatorConnector.open(spec, on: self.loop, proxyAddresses: addresses)
        }, discard: { leg in
            leg.socket.close()
            leg.process?.terminate()
        }, apply: { opened in
            let hop = Hop(id: id, mediator: lease?.name, target: target, request: request, lease: lease)
            let position = min(request.position ?? self.hops.count, self.hops.count)
            self.hops.insert(hop, at: position)
            for (direction, leg) in opened {
                self.insert(leg, of: hop, direction: direction, at: position)
            }
            self.publish()
            self.metrics.hopSpliced()
            self.events.publish(.hopSpliced(session: self.record.id, hop.view.snapshot(position: position)))
            self.logger.info("hop spliced", metadata: [
                "hop": "\(id)", "mediator": "\(target)", "position": "\(position)",
                "spliced_at": "\(hop.legs.mapValues(\.stats.splicedAt))",
            ])
            // A mediator that hung up before it was wired in has failed.
            if let dead = hop.legs.values.first(where: { !$0.port.socket.isOpen }) {
                self.mediatorFailed(hop, "\(dead.port.role) closed before the splice took effect")
            }
            // What the mediator sent before it was wired in, once every leg is in place.
            if self.hop(id) != nil {
                hop.legs.values.forEach { $0.port.socket.resumeRead() }
            }
            return hop.view.snapshot(position: position)
        }).assumeIsolated().flatMapErrorThrowing { error in
            lease?.release()
            throw error
        }.nonisolated()
    }

    /// Splits the link where the hop sits in `direction` into reader → mediator → writer.
    private func insert(_ opened: MediatorConnector.Opened, of hop: Hop, direction: Direction, at position: Int) {
        let path = path(direction)
        // Hops the direction passes before this one: the lower layers going towards the
        // server, the upper ones coming back.
        let before = direction == .clientToServer
            ? hops[..<position].filter { $0.covers(direction) }.count
            : hops[(position + 1)...].filter { $0.covers(direction) }.count
        let stats = HopLegCounters(splicedAt: path.links[before].offset)
        let port = Port(role: .hop(hop.id, direction), socket: opened.socket, session: self,
                        written: stats.fed, read: stats.emitted)
        let (feed, _) = path.splice(port, atLink: before)
        hop.legs[direction] = HopLeg(direction: direction, port: port, process: opened.process, stats: stats)
        port.socket.resumeRead()
        feed.reader.socket.resumeRead()
    }
}
