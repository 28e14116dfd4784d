import SpliceCore
import SpliceIO

/// A session's part in a handoff (issue 15, first slice): only plain sessions move, frozen
/// on their loop while their sockets travel, then let go of (acknowledged) or thawed (the
/// successor failed); the successor adopts them.
extension Session {
    /// Why this session cannot be handed over yet, or nil if it can. Runs on the loop.
    /// With `allowDialing`, a session still dialing its server passes (it is waited for
    /// once the listeners are paused).
    func handoffBlocker(allowDialing: Bool = false) -> String? {
        let id = record.id
        switch machine.phase {
        case .connecting: return allowDialing ? nil : "session \(id) is still connecting to its server"
        case .ended: return nil  // on its way out: nothing to move
        case .open: break
        }
        if !hops.isEmpty { return "session \(id) has a hop; handing off mediated sessions is not supported yet" }
        if !splits.isEmpty { return "session \(id) has a split; handing off split sessions is not supported yet" }
        if capture != nil { return "session \(id) is being captured; handing off a live capture is not supported yet" }
        if !machine.readsEnabled { return "session \(id) is still applying its listener's templates" }
        if !machine.reconfiguring.isEmpty { return "session \(id) has a reconfiguration under way" }
        if machine.halfClosed || client?.eofReceived == true || server?.eofReceived == true
            || client?.outputClosing == true || server?.outputClosing == true {
            return "session \(id) is half-closed; handing off half-closed sessions is not supported yet"
        }
        if (client?.skip ?? 0) > 0 || (server?.skip ?? 0) > 0 || allPaths.contains(where: { $0.links.count != 1 }) {
            return "session \(id) is not a direct client-server session"
        }
        guard client?.socket is RelaySocket, server?.socket is RelaySocket else {
            return "session \(id) has a connection the handoff cannot pass on"
        }
        return nil
    }

    /// Whether the session is still dialing its server.
    var isDialing: Bool { machine.phase == .connecting }

    /// Freezes the session and returns its state, the two sockets suspended (not polled,
    /// queued output kept); nil, and nothing changed, if it cannot move (`handoffBlocker`).
    func freezeForHandoff() -> (state: HandoffSessionState, client: RelaySocket, server: RelaySocket)? {
        guard handoffBlocker() == nil, case .open = machine.phase,
              let clientSocket = client?.socket as? RelaySocket, let serverSocket = server?.socket as? RelaySocket,
              clientSocket.handoffDescriptor != nil, serverSocket.handoffDescriptor != nil else { return nil }
        handoffFrozen = true
        guard let toClient = clientSocket.suspendForHandoff() else {
            handoffFrozen = false
            return nil
        }
        guard let toServer = serverSocket.suspendForHandoff() else {
            clientSocket.resumeAfterHandoff()
            handoffFrozen = false
            return nil
        }
        let state = HandoffSessionState(
            id: record.id, listener: record.listener, client: record.client, server: serverAddress,
            openedAt: record.openedAt, bytes: record.bytes, clientPending: toClient, serverPending: toServer)
        return (state, clientSocket, serverSocket)
    }

    /// Reads and writes again: in the predecessor after the successor failed (the sockets are
    /// polled again), in the successor once the handoff is acknowledged (the bytes the
    /// predecessor had queued are written first).
    func thawAfterHandoff() {
        guard handoffFrozen else { return }
        handoffFrozen = false
        if let queued = handoffQueued {
            handoffQueued = nil
            queued.toServer.withUnsafeBytes { server?.socket.write($0) }
            queued.toClient.withUnsafeBytes { client?.socket.write($0) }
        }
        for port in [client, server].compactMap({ $0 }) {
            guard let socket = port.socket as? RelaySocket else { continue }
            socket.resumeAfterHandoff()
            socket.resumeRead()
        }
    }

    /// The successor has the session: close our descriptors without touching the
    /// connections, and leave the registry without a `session.closed` (it did not close).
    func relinquishAfterHandoff() {
        guard handoffFrozen, !ending else { return }
        _ = machine.end(.shutdown)
        for port in [client, server].compactMap({ $0 }) {
            (port.socket as? RelaySocket)?.relinquish()
        }
        allPaths.forEach { $0.detachAll() }
        for port in allPorts { port.session = nil }
        registry.remove(record.id)
        context.stats.sessionClosed()
        record.release()
        logger.debug("session handed off")
    }

    /// Takes over a session a predecessor handed on, frozen until the handoff is acknowledged
    /// (`thawAfterHandoff`): both sockets connected and polled, the counters going on from
    /// the record's, the bytes it had queued kept to be written first. Runs on the loop.
    func adopt(client clientSocket: RelaySocket, server serverSocket: RelaySocket, state: HandoffSessionState) {
        let client = Port(role: .client, socket: clientSocket, session: self, written: record.toClient,
                          read: ByteCounter(state.bytes.clientToServer))
        let server = Port(role: .server, socket: serverSocket, session: self, written: record.toServer,
                          read: ByteCounter(state.bytes.serverToClient))
        adoptPorts(client: client, server: server)
        machine.adopted()
        // Offsets go on counting the same streams (splices report positions in them).
        let toServer = path(.clientToServer).links[0]
        toServer.offset = state.bytes.clientToServer
        let toClient = path(.serverToClient).links[0]
        toClient.offset = state.bytes.serverToClient
        // Already counted as delivered by the predecessor: written at the thaw, not counted again.
        handoffFrozen = true
        if !state.clientPending.isEmpty || !state.serverPending.isEmpty {
            handoffQueued = (state.clientPending, state.serverPending)
        }
        registry.insert(record)
        context.stats.sessionAdopted()
        publish()
        logger.debug("session taken over", metadata: [
            "pending_to_client": "\(state.clientPending.count)", "pending_to_server": "\(state.serverPending.count)",
        ])
    }
}
