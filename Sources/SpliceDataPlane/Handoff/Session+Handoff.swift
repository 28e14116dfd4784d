import NIOCore
import SpliceCore
import SpliceIO
#if canImport(Glibc)
import Glibc
#endif

/// A session's part in a handoff (issue 15): sessions with their hops (TCP and exec
/// mediators) and splits move (protocol version 2), frozen on their loop while their
/// descriptors travel, then let go of (acknowledged) or thawed (the successor failed); the
/// successor adopts them.
extension Session {
    /// Whether the session can be frozen for a handoff now. Runs on the loop.
    ///
    /// What settles by itself soon waits (the listeners are paused meanwhile, so no new
    /// session starts): a dial to the server (bounded by the listener's connect timeout),
    /// the listener's templates being applied (their dials, likewise), an EOF being passed
    /// on, a connection closing or failing (the session ends). What an operator started, or
    /// what the protocol cannot carry, refuses the handoff.
    ///
    /// A session still dialing its server does not move: the protocol carries connected
    /// sockets only (a connect in flight has no state to hand over but the kernel's, and
    /// its timeout and failure report belong to the process that started it). It is waited
    /// for, up to `Gateway.handoffSettleWait`, and then refuses the handoff, saying so.
    func handoffReadiness() -> HandoffReadiness {
        let id = record.id
        switch machine.phase {
        case .connecting: return .settling("session \(id) is still connecting to its server")
        case .ended: return .gone  // on its way out: nothing to move
        case .open: break
        }
        if !machine.readsEnabled { return .settling("session \(id) is still applying its listener's templates") }
        if !machine.reconfiguring.isEmpty {
            return .blocked("session \(id) has a reconfiguration under way (a hop being spliced or removed); "
                + "it can be handed off once that finishes")
        }
        if let reason = hopsBlocker() { return .blocked(reason) }
        if let reason = payloadBlocker() { return .blocked(reason) }
        let sockets = allPorts.map { $0.socket as? RelaySocket }
        guard !sockets.contains(where: { $0 == nil }) else {
            return .blocked("session \(id) has a connection the handoff cannot pass on")
        }
        if let reason = halfCloseBlocker() { return .settling(reason) }
        if sockets.contains(where: { $0?.canSuspendForHandoff != true }) {
            return .settling("session \(id) has a connection closing or failing; it ends first")
        }
        return .ready
    }

    /// Why this session cannot be handed over, or nil if it can (now, or once it has
    /// settled, with `allowSettling`). Runs on the loop.
    func handoffBlocker(allowSettling: Bool = false) -> String? {
        switch handoffReadiness() {
        case .ready, .gone: nil
        case .settling(let reason): allowSettling ? nil : reason
        case .blocked(let reason): reason
        }
    }

    /// Why an EOF keeps the session from moving, or nil: a half-close moves once it has
    /// taken effect (the output shut after its last byte, the direction finished at the
    /// endpoint, a recipient's copy closed), not while it is being passed on.
    private func halfCloseBlocker() -> String? {
        let halfClosing = "session \(record.id) is half-closing (an EOF is being passed on); it can be handed off once that finishes"
        for port in allPorts where port.outputClosing {
            guard let socket = port.socket as? RelaySocket, socket.outputShut, !socket.isHalfClosing else { return halfClosing }
        }
        if server?.outputClosing == true, !machine.finished.contains(.clientToServer) { return halfClosing }
        if client?.outputClosing == true, !machine.finished.contains(.serverToClient) { return halfClosing }
        if splits.contains(where: { $0.state == .active && $0.legs.values.contains(where: \.port.outputClosing) }) {
            return halfClosing
        }
        if machine.halfClosed, machine.finished.isEmpty { return halfClosing }
        return nil
    }

    /// Why the hops keep the session from moving, or nil: hops move when active, with every
    /// link of the chain where it belongs and nothing held, an exec mediator's process
    /// watched through a pidfd and its input still open (a closed pipe has no descriptor
    /// left to pass), and all of the session's descriptors fitting in one frame.
    private func hopsBlocker() -> String? {
        let id = record.id
        for hop in hops {
            if hop.state != .active || hop.removal != nil {
                return "session \(id): hop \(hop.id) is being removed; it can be handed off once the removal finishes"
            }
            if hop.legs.values.contains(where: { $0.process != nil && $0.port.outputClosing }) {
                return "session \(id): hop \(hop.id) is an exec mediator whose input was closed; "
                    + "handing that off is not supported yet"
            }
            if hop.legs.values.contains(where: { $0.process != nil && $0.process?.handoffDescriptor == nil }) {
                return "session \(id): hop \(hop.id) is an exec mediator watched without a pidfd (a kernel before "
                    + "5.3, or no descriptor left); its process cannot be handed on"
            }
        }
        let descriptors = 2 + liveSplitLegs.count
            + hops.flatMap(\.legs.values).reduce(0) { $0 + ($1.process == nil ? 1 : 3) }
        if descriptors > Self.handoffMaxDescriptors {
            return "session \(id) needs \(descriptors) descriptors for its connections, mediators and recipients; "
                + "a handoff carries at most \(Self.handoffMaxDescriptors) per session"
        }
        if (client?.skip ?? 0) > 0 || (server?.skip ?? 0) > 0 { return "session \(id) is not a direct client-server session" }
        for path in allPaths {
            let expected = 1 + hops.filter { $0.legs[path.direction] != nil }.count
            if path.links.count != expected || path.links.contains(where: { $0.paused || !$0.held.isEmpty }) {
                return "session \(id) has a \(path.direction.rawValue) chain under reconfiguration"
            }
        }
        return nil
    }

    /// Descriptors one session may take in a handoff frame (client, server, hop and split
    /// legs).
    static let handoffMaxDescriptors = 16

    /// Why the bytes the session holds do not fit in its handoff frame, or nil. Checked
    /// before anything freezes (and again in the freeze's own turn, when nothing grows any
    /// more): found by the successor, it would refuse only after every session had waited.
    /// Queued output is bounded by the high-water marks, but a split's (and a replica's held
    /// output) by its `buffer_bytes`, up to 1 GiB.
    private func payloadBlocker() -> String? {
        let queued = allPorts.reduce(0) { $0 + (($1.socket as? RelaySocket)?.pendingBytes ?? 0) }
        let held = splits.filter { $0.state != .dropped }.flatMap(\.legs.values).reduce(0) { $0 + $1.backlog.count }
        let limit = Gateway.handoffMaxSessionBytes
        guard queued + held > limit else { return nil }
        return "session \(record.id) holds \(queued + held) bytes not yet delivered (queued output and held replica output); "
            + "a handoff carries at most \(limit) per session: it can be handed off once its peers have taken them"
    }

    /// The legs of splits still attached, in split order, client-to-server first.
    private var liveSplitLegs: [SplitLeg] {
        splits.filter { $0.state != .dropped }.flatMap { split in Direction.allCases.compactMap { split.legs[$0] } }
    }

    /// Freezes the session and returns its state and descriptors (`HandoffSession.fds`),
    /// every socket suspended (not polled, queued output kept) and every exec mediator's
    /// watch with it; nil, and nothing changed, if it cannot move (`handoffBlocker`).
    ///
    /// The descriptors are the session's own, not copies (a copy of each would double the
    /// process's descriptors at the worst moment: a gateway past half its limit could never
    /// hand off). Their numbers stay valid because nothing closes them while the session is
    /// frozen: an end is deferred to the thaw (`end`), a change asked for over the API is
    /// refused (`SessionRecord.changingSession`), a mediator's exit is not reaped
    /// (`ExecProcess.suspendForHandoff`), and the gateway closes a paused listener only
    /// once the handoff is over.
    func freezeForHandoff() -> (state: HandoffSessionState, fds: [Int32])? {
        guard case .ready = handoffReadiness(), let client, let server else { return nil }
        let hopLegs = hops.flatMap { hop in Direction.allCases.compactMap { hop.legs[$0] } }
        let ports = [client, server] + hopLegs.map(\.port) + liveSplitLegs.map(\.port)
        let sockets = ports.compactMap { $0.socket as? RelaySocket }
        guard sockets.count == ports.count, handoff.freeze() else { return nil }
        var queued: [[UInt8]] = []
        for socket in sockets {
            guard let bytes = socket.suspendForHandoff() else {
                sockets.prefix(queued.count).forEach { $0.resumeAfterHandoff() }
                _ = handoff.thaw()  // frozen a moment ago: nothing was deferred
                return nil
            }
            queued.append(bytes)
        }
        var next = queued[2...].makeIterator()
        let handedHops = hops.map { hop in
            HandoffHopState(id: hop.id, mediator: hop.mediator, target: hop.target, request: hop.request,
                            legs: Direction.allCases.compactMap { direction -> HandoffHopLegState? in
                guard let leg = hop.legs[direction] else { return nil }
                return HandoffHopLegState(direction: direction, splicedAt: leg.stats.splicedAt, fed: leg.stats.fed.value,
                                          emitted: leg.stats.emitted.value, pending: next.next() ?? [],
                                          pid: leg.process?.pid)
            })
        }
        let handedSplits = splits.map { split in
            HandoffSplitState(id: split.id, request: split.request, state: split.state, reason: split.dropReason,
                              isReplica: split.isReplica, legs: Direction.allCases.compactMap { direction -> HandoffSplitLegState? in
                guard let stats = split.legs[direction]?.stats ?? split.handedStats[direction] else { return nil }
                let backlog = split.legs[direction]?.backlog.bytes ?? (start: 0, bytes: [])
                return HandoffSplitLegState(
                    direction: direction, fromOffset: stats.fromOffset, sent: stats.sent.value,
                    discarded: stats.discarded.value, unsentAtDrop: stats.unsentAtDrop.load(ordering: .relaxed),
                    pending: split.state == .dropped ? [] : next.next() ?? [], backlog: backlog.bytes,
                    backlogStart: backlog.start)
            })
        }
        var offsets: [Direction: [UInt64]] = [:]
        for path in allPaths { offsets[path.direction] = path.links.map(\.offset) }
        var state = HandoffSessionState(
            id: record.id, listener: record.listener, client: record.client, server: serverAddress,
            openedAt: record.openedAt, bytes: record.bytes, clientPending: queued[0], serverPending: queued[1],
            reads: ByteCounts(clientToServer: client.read.value, serverToClient: server.read.value),
            hops: handedHops, splits: handedSplits, linkOffsets: offsets)
        if ports.contains(where: { $0.eofReceived || $0.outputClosing }) {
            state.inputEnded = ports.map(\.eofReceived)
            state.outputShut = ports.map(\.outputClosing)
            state.finished = machine.finished
        }
        var fds: [Int32] = []
        for (index, socket) in sockets.enumerated() {
            fds += socket.handoffDescriptors ?? []
            if index >= 2, index - 2 < hopLegs.count, let process = hopLegs[index - 2].process,
               let pidfd = process.handoffDescriptor {
                fds.append(pidfd)
            }
        }
        guard fds.count == state.descriptorCount else {
            // Cannot happen after `handoffBlocker` in the same turn; if it did, no half-frozen
            // session is left behind.
            thawAfterHandoff()
            return nil
        }
        hopLegs.forEach { $0.process?.suspendForHandoff() }
        return (state, fds)
    }

    /// Reads and writes again: in the predecessor after the successor failed (the sockets are
    /// polled again), in the successor once the handoff is acknowledged (the bytes the
    /// predecessor had queued are written first).
    func thawAfterHandoff() {
        guard let thaw = handoff.thaw() else { return }
        defer {
            if let reason = thaw.deferredEnd { end(reason) }
        }
        for (port, bytes) in thaw.queued ?? [] {
            bytes.withUnsafeBytes { port.socket.write($0) }
        }
        for port in allPorts {
            guard let socket = port.socket as? RelaySocket else { continue }
            socket.resumeAfterHandoff()
            socket.resumeRead()
        }
        hops.flatMap(\.legs.values).forEach { $0.process?.resumeAfterHandoff() }
    }

    /// The successor has the session: its captures' files end here (the connections go on,
    /// so no FIN or reset is recorded; the statistics blocks close the file).
    func endCaptureAfterHandoff() {
        capture?.sinks.forEach { $0.close() }
        capture = nil
    }

    /// The successor has the session: close our descriptors without touching the
    /// connections, and leave the registry without a `session.closed` (it did not close).
    func relinquishAfterHandoff() {
        guard !ending, handoff.handOff() else { return }
        _ = machine.end(.shutdown)
        for port in allPorts {
            (port.socket as? RelaySocket)?.relinquish()
        }
        // The successor watches the exec mediators now; they run on.
        hops.flatMap(\.legs.values).forEach { $0.process?.relinquish() }
        // The mediators' uses go with the hops (the successor counts them).
        hops.forEach { $0.lease?.release() }
        allPaths.forEach { $0.detachAll() }
        for port in allPorts { port.session = nil }
        registry.remove(record.id)
        context.stats.sessionClosed()
        record.release()
        logger.debug("session handed off")
    }

    /// Takes over a session a predecessor handed on, frozen until the handoff is acknowledged
    /// (`thawAfterHandoff`): every socket and pipe polled, exec mediators watched through
    /// their pidfds, hops spliced back in stack order with their leases, splits tapping
    /// their endpoints again, the counters and link offsets going on from the handed ones,
    /// the bytes it had queued kept to be written first. Runs on the loop. Throws, with
    /// nothing wired and the leg descriptors closed quietly, if a hop's mediator is not
    /// registered here or a descriptor cannot be polled.
    func adopt(client clientSocket: RelaySocket, server serverSocket: RelaySocket, legFDs: [Int32],
               state: HandoffSessionState) throws(APIError) {
        let legs = try adoptLegs(legFDs, state: state)
        var leases: [MediatorLease?] = []
        for hop in state.hops {
            do {
                leases.append(try hop.mediator.map { name throws(APIError) in
                    try mediators.resolve(.registered(name), allowAdHoc: true).1
                } ?? nil)
            } catch {
                leases.forEach { $0?.release() }
                legs.sockets.forEach { $0.relinquish() }
                legs.processes.forEach { $0?.relinquish() }
                throw error
            }
        }
        let client = Port(role: .client, socket: clientSocket, session: self, written: record.toClient,
                          read: ByteCounter(state.reads.clientToServer))
        let server = Port(role: .server, socket: serverSocket, session: self, written: record.toServer,
                          read: ByteCounter(state.reads.serverToClient))
        adoptPorts(client: client, server: server)
        machine.adopted(finished: state.finished)
        var queued: [(Port, [UInt8])] = [(client, state.clientPending), (server, state.serverPending)]
        var sockets = legs.sockets.makeIterator()
        var processes = legs.processes.makeIterator()
        for (handed, lease) in zip(state.hops, leases) {
            let hop = Hop(id: handed.id, mediator: handed.mediator, target: handed.target, request: handed.request,
                          lease: lease)
            let position = hops.count
            hops.append(hop)
            for handedLeg in handed.legs {
                guard let socket = sockets.next(), let process = processes.next() else { break }
                let direction = handedLeg.direction
                // As a splice appends: past the hops below going out, before them coming back.
                let before = direction == .clientToServer ? hops[..<position].filter { $0.covers(direction) }.count : 0
                let stats = HopLegCounters(splicedAt: handedLeg.splicedAt, fed: handedLeg.fed, emitted: handedLeg.emitted)
                let port = Port(role: .hop(hop.id, direction), socket: socket, session: self,
                                written: stats.fed, read: stats.emitted)
                path(direction).splice(port, atLink: before)
                hop.legs[direction] = HopLeg(direction: direction, port: port, process: process, stats: stats)
                queued.append((port, handedLeg.pending))
            }
        }
        for handed in state.splits {
            queued += adoptSplit(handed, sockets: &sockets)
        }
        // Offsets go on counting the same streams (splices report positions in them).
        for path in allPaths {
            guard let offsets = state.linkOffsets[path.direction], offsets.count == path.links.count else {
                path.links[0].offset = path.direction == .clientToServer ? state.bytes.clientToServer
                    : state.bytes.serverToClient
                continue
            }
            zip(path.links, offsets).forEach { $0.offset = $1 }
        }
        adoptHalfClose(queued.map(\.0), state: state)
        // Already counted as delivered by the predecessor: written at the thaw, not counted again.
        handoff.adopt(queued: queued.filter { !$0.1.isEmpty })
        registry.insert(record)
        context.stats.sessionAdopted()
        publish()
        logger.debug("session taken over", metadata: [
            "pending_to_client": "\(state.clientPending.count)", "pending_to_server": "\(state.serverPending.count)",
            "hops": "\(state.hops.count)", "splits": "\(state.splits.count)",
        ])
    }

    /// Marks the EOFs a half-closed session had seen and passed on, per port in descriptor
    /// order (the sockets' kernel state came with them): nothing more is read from a port
    /// whose peer sent EOF, nor written to one whose output was shut.
    private func adoptHalfClose(_ ports: [Port], state: HandoffSessionState) {
        guard !state.inputEnded.isEmpty || !state.outputShut.isEmpty else { return }
        for (index, port) in ports.enumerated() {
            let ended = index < state.inputEnded.count && state.inputEnded[index]
            let shut = index < state.outputShut.count && state.outputShut[index]
            port.eofReceived = ended
            port.outputClosing = shut
            (port.socket as? RelaySocket)?.adoptHalfClose(inputEnded: ended, outputShut: shut)
        }
        if client?.outputClosing == true || server?.outputClosing == true { machine.eofSentToEndpoint() }
    }

    /// Polls the legs' descriptors (`HandoffSession.legFDs`): one socket per hop leg (with
    /// its process, for exec), then one per attached split leg. On failure every descriptor
    /// is closed quietly (the predecessor still serves the connections) and nothing is left
    /// watched.
    private func adoptLegs(_ fds: [Int32], state: HandoffSessionState)
        throws(APIError) -> (sockets: [RelaySocket], processes: [ExecProcess?]) {
        var rest = fds[...]
        var sockets: [RelaySocket] = []
        var processes: [ExecProcess?] = []
        func fail(_ why: String) -> APIError {
            sockets.forEach { $0.relinquish() }
            processes.forEach { $0?.relinquish() }
            rest.forEach { close($0) }
            return .badGateway(why)
        }
        guard fds.count == state.descriptorCount - 2 else {
            throw fail("\(fds.count) leg descriptors where \(state.descriptorCount - 2) were announced")
        }
        let hopLegs: [HandoffHopLegState?] = state.legs
        for leg in hopLegs + Array(repeating: nil, count: state.liveSplitLegs.count) {
            if let pid = leg?.pid {
                let (output, input, pidfd) = (rest.removeFirst(), rest.removeFirst(), rest.removeFirst())
                guard let process = ExecProcess.adopt(pid: pid, output: output, input: input, pidfd: pidfd, on: loop)
                else {
                    [output, input].forEach { close($0) }
                    throw fail("exec mediator \(pid) cannot be watched")
                }
                processes.append(process)
                guard let socket = RelaySocket(pipesReading: output, writing: input, loop: loop) else {
                    throw fail("exec mediator \(pid): its pipes cannot be polled")
                }
                sockets.append(socket)
            } else {
                guard let socket = RelaySocket(tcp: rest.removeFirst(), loop: loop) else {
                    throw fail("a mediator or recipient socket cannot be polled")
                }
                if leg != nil { processes.append(nil) }
                sockets.append(socket)
            }
        }
        return (sockets, processes)
    }

    /// Takes over one split: an attached one taps its direction's endpoint again (after the
    /// splits before it), its counters, replica flag and held replica output going on; a
    /// dropped one stays listed with its figures. Returns its sockets' queued bytes.
    private func adoptSplit(_ handed: HandoffSplitState,
                            sockets: inout IndexingIterator<[RelaySocket]>) -> [(Port, [UInt8])] {
        let split = Split(id: handed.id, request: handed.request)
        split.state = handed.state
        split.dropReason = handed.reason
        split.isReplica = handed.isReplica
        splits.append(split)
        var queued: [(Port, [UInt8])] = []
        for handedLeg in handed.legs {
            let direction = handedLeg.direction
            let delivered = direction == .clientToServer ? record.toServer : record.toClient
            let stats = SplitLegCounters(fromOffset: handedLeg.fromOffset, delivered: delivered, sent: handedLeg.sent,
                                         discarded: handedLeg.discarded, unsentAtDrop: handedLeg.unsentAtDrop)
            guard handed.state != .dropped else {
                split.handedStats[direction] = stats
                continue
            }
            guard let socket = sockets.next(), let sink = path(direction).sink else { continue }
            let port = Port(role: .split(split.id, direction), socket: socket, session: self,
                            written: stats.sent, read: stats.discarded)
            port.tapped = sink
            let leg = SplitLeg(direction: direction, port: port, stats: stats, policy: split.request.onSlow)
            if !handedLeg.backlog.isEmpty {
                handedLeg.backlog.withUnsafeBytes { leg.backlog.append($0, at: handedLeg.backlogStart) }
            }
            sink.taps.append(leg)
            split.legs[direction] = leg
            queued.append((port, handedLeg.pending))
        }
        return queued
    }
}

extension Session {
    /// Why a change asked for over the API cannot be made now, or nil: a frozen session's
    /// descriptors are pinned for the handoff (nothing may close, open or move them), and
    /// if the handoff succeeds the session is the successor's to change.
    var handoffChangeRefusal: APIError? {
        guard handoff.isHeld else { return nil }
        return .conflict("session \(record.id) is being handed to a new process; try again once the handoff is over")
    }
}

extension SessionRecord {
    /// Runs a change asked for over the API (a kill, a splice, a removal, a split, a
    /// failover, a capture) on the session's loop, or refuses it (409) while the session is
    /// frozen for a handoff (`Session.handoffChangeRefusal`). Checked on the loop, where the
    /// freeze happens: a change that was let in before the freeze runs before it.
    func changingSession<T: Sendable>(_ body: @escaping @Sendable (Session) -> EventLoopFuture<T>)
        -> EventLoopFuture<T> {
        withSession { session in
            if let refusal = session.handoffChangeRefusal { return session.eventLoop.makeFailedFuture(refusal) }
            return body(session)
        }
    }
}

/// Whether a session can be frozen for a handoff now (`Session.handoffReadiness`).
enum HandoffReadiness {
    /// It can.
    case ready
    /// Not yet: something under way finishes by itself soon (the reason says what).
    case settling(String)
    /// Not while what the reason names lasts: the handoff is refused.
    case blocked(String)
    /// It has ended: nothing to move.
    case gone
}
