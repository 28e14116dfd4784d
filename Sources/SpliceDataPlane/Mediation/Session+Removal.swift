import NIOCore
import SpliceCore

extension Session {
    /// Drains and removes a hop: stops feeding it, half-closes its input, forwards what it
    /// still emits until its EOF, then restores the direct path; bytes that arrive meanwhile
    /// wait (reads are held) and follow in order.
    func removeHop(_ id: HopID) -> EventLoopFuture<RemovalReport> {
        guard let hop = hop(id) else {
            return eventLoop.makeFailedFuture(APIError.notFound("session \(record.id) has no hop \(id)"))
        }
        guard hop.state == .active else {
            return eventLoop.makeFailedFuture(APIError.conflict("hop \(id) is already being removed"))
        }
        let directions = Array(hop.legs.keys)
        if let reason = refusal(directions) {
            return eventLoop.makeFailedFuture(APIError.conflict(reason))
        }
        hop.state = .draining
        machine.beginReconfiguring(directions)
        publish()
        let promise = eventLoop.makePromise(of: RemovalReport.self)
        hop.removal = promise
        hop.drainTimer = eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(hop.request.drainTimeoutMs))) {
            self.drainTimedOut(hop)
        }
        for leg in hop.legs.values {
            startDrain(leg, of: hop)
        }
        return promise.futureResult
    }

    private func startDrain(_ leg: HopLeg, of hop: Hop) {
        guard let feed = leg.port.inLink else { return }
        feed.paused = true
        leg.removedAt = feed.offset
        leg.emittedAtStop = leg.port.read.value
        leg.draining = true
        leg.port.outputClosing = true
        leg.port.socket.closeOutputAfterFlush { result in
            if case .failure(let error) = result, leg.draining {
                self.mediatorFailed(hop, "half-closing its input failed: \(error)")
            }
        }
    }

    /// The mediator's output ended after its input was closed: the leg is drained.
    func finishDrain(_ leg: HopLeg, of hop: Hop) {
        unsplice(leg)
        guard hop.legs.values.allSatisfy(\.done) else { return }
        let legs = hop.legs
        let removal = hop.removal
        hop.removal = nil
        retire(hop)
        metrics.hopRemoved()
        logger.info("hop removed", metadata: [
            "hop": "\(hop.id)", "removed_at": "\(legs.mapValues(\.removedAt))", "drained": "\(legs.mapValues(\.drained))",
        ])
        let report = RemovalReport(removedAt: legs.mapValues(\.removedAt), drained: legs.mapValues(\.drained))
        events.publish(.hopRemoved(session: record.id, hop: hop.id, report))
        removal?.succeed(report)
    }

    private func drainTimedOut(_ hop: Hop) {
        guard hop.state == .draining, self.hop(hop.id) != nil else { return }
        let ms = hop.request.drainTimeoutMs
        metrics.hopFailed()
        events.publish(.hopFailed(session: record.id, hop: hop.id, reason: "drain timed out after \(ms) ms",
                                  policy: hop.request.onFailure))
        switch hop.request.onFailure {
        case .closeSession:
            logger.warning("drain timed out, closing session", metadata: ["hop": "\(hop.id)"])
            // End first, so whoever waits on the removal finds the session already gone.
            let removal = hop.removal
            hop.removal = nil
            end(.mediatorFailed)
            removal?.fail(APIError.gatewayTimeout(
                "hop \(hop.id) did not drain within \(ms) ms; session \(record.id) closed (on_failure=close_session)"))
        case .bypass:
            logger.warning("drain timed out, hop dropped", metadata: ["hop": "\(hop.id)"])
            bypass(hop, failing: APIError.gatewayTimeout(
                "hop \(hop.id) did not drain within \(ms) ms; hop dropped and the bytes still inside the mediator "
                    + "were lost (on_failure=bypass)"))
        }
    }

    /// A mediator failed (refused, reset, exited): the hop's policy decides.
    func mediatorFailed(_ hop: Hop, _ why: String) {
        guard self.hop(hop.id) != nil, !ending else { return }
        metrics.hopFailed()
        events.publish(.hopFailed(session: record.id, hop: hop.id, reason: why, policy: hop.request.onFailure))
        logger.warning("mediator failed", metadata: [
            "hop": "\(hop.id)", "reason": "\(why)", "on_failure": "\(hop.request.onFailure.rawValue)",
        ])
        switch hop.request.onFailure {
        case .closeSession:
            let removal = hop.removal
            hop.removal = nil
            end(.mediatorFailed)
            removal?.fail(APIError.badGateway("mediator of hop \(hop.id) failed (\(why)); session closed"))
        case .bypass:
            bypass(hop, failing: APIError.badGateway(
                "mediator of hop \(hop.id) failed (\(why)); hop dropped, bytes inside it lost"))
        }
    }

    /// Drops a failed hop and restores the direct paths, failing a removal under way.
    ///
    /// The hop leaves the stack before its channels close: closing fails the writes still
    /// queued for the mediator, and their callbacks must find the hop gone instead of
    /// handling it as failed a second time.
    private func bypass(_ hop: Hop, failing failure: APIError) {
        let removal = hop.removal
        hop.removal = nil
        retire(hop)
        hop.legs.values.filter { !$0.done }.forEach(unsplice)
        removal?.fail(failure)
    }

    /// Joins the links around a leg back into one and lets the mediator go: bytes held
    /// while the leg drained go first, then an EOF the sender gave meanwhile.
    private func unsplice(_ leg: HopLeg) {
        leg.done = true
        // No longer draining: a half-close its closing channel fails is not a failure now.
        leg.draining = false
        let port = leg.port
        if let joined = path(leg.direction).unsplice(port) {
            for buffer in joined.held {
                forward(buffer, over: joined.link)
            }
            if joined.eofSeen {
                propagateEOF(over: joined.link)
            } else {
                joined.link.reader.socket.resumeRead()
            }
        }
        port.session = nil
        port.socket.close()
        leg.process?.terminate()
    }

    /// Takes a hop whose legs are all unspliced out of the stack.
    private func retire(_ hop: Hop) {
        hop.drainTimer?.cancel()
        hops.removeAll { $0 === hop }
        machine.endReconfiguring(hop.legs.keys)
        hop.lease?.release()
        publish()
    }
}
