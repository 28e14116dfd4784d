import Dispatch
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import SpliceCluster
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane
import SpliceHandoff
import SpliceIO
import SplicePeerClient
import Synchronization

/// The running process: relay loops, the gateway, the admin server, and the signal wait.
struct Runtime {
    let settings: Settings
    let logger: Logger

    func run() throws {
        MallocTuning.apply()
        // Signals are caught from the start, so one arriving during start-up is not lost.
        let signals = SignalWaiter()
        let notifier = ServiceNotifier(logger: logger)
        let reloader = try startReloader(notifier: notifier)
        let group = RelayLoopGroup(loopCount: settings.eventLoops)
        // The demo's echo server and sample mediators are ordinary NIO servers beside the relay.
        let demoGroup = settings.demoListen.map { _ in MultiThreadedEventLoopGroup(numberOfThreads: 1) }
        let metrics = GatewayMetrics()
        // Libraries that report through swift-metrics land in the same /metrics page.
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
        // First of all, the cluster's database: the node number must be known before any
        // listener accepts (session ids carry it), and an unusable database stops start-up.
        // A successor keeps its predecessor's node number, known once it has heard from it.
        var cluster: Cluster?
        do {
            if settings.takeOver == nil {
                cluster = try settings.cluster.map { settings throws(ClusterError) in
                    try Cluster.open(url: settings.database, seedListeners: self.settings.listeners,
                                     seedMediators: self.settings.mediators, logger: logger)
                }
            }
        } catch {
            try? demoGroup?.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            throw StartupError(error.description)
        }
        let gateway = Gateway(group: group, logger: logger, allowAdHocMediators: settings.allowAdHocMediators,
                              maxSessions: settings.maxSessions, metrics: metrics,
                              firstSessionNumber: cluster.map { ClusterNode.firstSessionNumber(ofNode: $0.nodeNumber) } ?? 1)
        // Requests to the other nodes (forwarded actions, merged listings and events).
        let peers = settings.cluster.map { _ in PeerClient() }
        let state = settings.stateFile.map(StateFile.init(path:))
        if let removed = state?.removeStaleTemporaries(), !removed.isEmpty {
            logger.notice("removed temporary state files left by an earlier crash", metadata: [
                "files": "\(removed.joined(separator: ", "))",
            ])
        }
        var demo: Demo?
        let server: HTTPServer
        var handoff: HandoffServer?
        var predecessor: HandoffTakeOver?
        // Set once a take-over is complete: the sessions are this process's from then on.
        var taken = false
        // A signal before the acknowledgement abandons a take-over (see `TakeOverSignalWatch`).
        let takeOverSignals = settings.takeOver.map { _ in TakeOverSignalWatch(signals: signals, logger: logger) }
        defer { takeOverSignals?.stop() }
        do {
            if let path = settings.takeOver {
                let received = try takeOver(from: path, into: gateway)
                predecessor = received
                cluster = try joinNode(of: received, from: path)
            } else if cluster == nil {
                // In a cluster the database's listeners and mediators are applied once the node
                // has joined (below); the config file only seeded a new database.
                try restore(into: gateway, from: state)
            }
            if let demoListen = settings.demoListen, let demoGroup {
                do {
                    demo = try Demo.start(listen: demoListen, group: demoGroup, gateway: gateway, state: state)
                } catch let error as APIError {
                    throw StartupError("cannot start the demo: \(error.detail) (choose another with --demo-listen)")
                }
            }
            // Written at once: the first start turns the config into the state, and the file
            // shows the ports actually bound. Not by a successor before the predecessor let go:
            // until then the file is the predecessor's (a failed take-over leaves it so).
            if predecessor == nil { try state?.save(gateway) }
            let persist = state.map { state in Persistence { () throws(APIError) in try state.save(gateway) } }
            let clustered = cluster?.attach(gateway: gateway, bindHost: settings.cluster?.bindHost,
                                            version: Splicegate.version)
            let alone = clustered == nil
                ? SingleNodeMembership(gateway: gateway, name: "", adminURL: "", version: Splicegate.version) : nil
            let api = AdminAPI(gateway: gateway, options: .init(
                webRoot: settings.webRoot, openAPIFile: settings.openAPIFile,
                version: Splicegate.version, token: settings.token, persist: persist ?? .none,
                authority: clustered?.authority,
                cluster: clustered.flatMap { clustered in peers.map { ClusterAccess(membership: clustered.membership, client: $0) } },
                alone: alone), logger: logger)
            var http = settings.http
            http.logger = logger
            if let predecessor {
                // Served only once the predecessor has let go of it (`completeTakeOver`).
                http.inheritedListenFD = predecessor.takeAdminFD()
                http.acceptsAtStart = false
            }
            http.screenHead = { request in api.screenHead(request) }
            http.streamsResponse = AdminAPI.streamsResponse
            do {
                server = try HTTPServer(configuration: http) { request in api.handle(request) }
            } catch {
                throw StartupError("admin API: \(error)")
            }
            let name = settings.cluster?.node ?? "\(ProcessInfo.processInfo.hostName):\(server.boundPort)"
            let advertise = settings.cluster?.advertise ?? server.baseURL
            alone?.rename(name, adminURL: advertise)
            if let predecessor, let path = settings.takeOver {
                do {
                    // The node's row must be this one's to take (same --node) before the ack.
                    try cluster?.confirmSuccession(as: name, adminURL: advertise)
                    if let number = takeOverSignals?.signal {
                        throw StartupError("--take-over \(path): stopped by signal \(number) before acknowledging; the running gateway keeps everything")
                    }
                    try completeTakeOver(predecessor, from: path, into: gateway, admin: server)
                } catch let error as ClusterError {
                    server.stop()
                    throw StartupError("--take-over \(path): \(error.description)")
                } catch {
                    server.stop()
                    throw error
                }
                taken = true
                // From the release on, this process alone writes the state file.
                saveAfterTakeOver(state, gateway)
            }
            if let path = settings.handoffSocket {
                do {
                    let node = cluster
                    handoff = try HandoffServer(path: path, gateway: gateway, admin: server, adminToken: settings.token,
                                                logger: logger, timeout: settings.handoffTimeout) {
                        // The successor stands in for this node from now on: no heartbeat, no
                        // reconciliation from here, and the node's row stays.
                        node?.handOver()
                        reloader.handedOff()
                        signals.post(SignalWaiter.handedOff)
                    }
                } catch where predecessor != nil {
                    // The sessions are ours already: better no next handoff than none of them.
                    logger.error("--handoff-socket: cannot listen; no successor can take over from this process",
                                 metadata: ["reason": "\(error)"])
                } catch {
                    server.stop()
                    throw StartupError("--handoff-socket: \(error)")
                }
            }
            do {
                try cluster?.start(name: name, adminURL: advertise, succeeding: taken)
            } catch {
                server.stop()
                throw StartupError(error.description)
            }
        } catch {
            if let predecessor, !taken {
                // Not acknowledged: the predecessor keeps everything (our copies closed quietly).
                gateway.relinquishAfterHandoff()
                predecessor.abort("\(error)")
            }
            cluster?.stop()
            peers?.shutdown()
            gateway.shutdown()
            demo?.stop()
            try? demoGroup?.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            // An API error's detail is the message; its status ("409 Conflict") means nothing here.
            throw error as? StartupError ?? (error as? APIError).map { StartupError($0.detail) } ?? StartupError("\(error)")
        }
        // Armed first: a SIGHUP sent as soon as the line or READY=1 is seen is not ignored.
        if handoff != nil { reloader.serving() }
        print("admin listening on \(server.baseURL)")
        fflush(nil)
        notifier.ready(succeeding: predecessor?.predecessor)

        takeOverSignals?.stop()
        let signal = signals.next()
        if signal != SignalWaiter.handedOff, gateway.handoffUnderway {
            logger.notice("signal during a handoff: finishing it first", metadata: ["signal": "\(signal)"])
        }
        // A handoff under way finishes before anything else; if it succeeded, the sessions
        // are the successor's whatever the signal was.
        if handoff?.stop() == true {
            // The successor has every session and socket: our copies are closed already, and
            // nothing may be shut down or reset (the connections live on over there).
            finishFlushing(group)
            server.stop()
            try? group.syncShutdownGracefully()
            logger.notice("stopped after handing off to a new process")
            return
        }
        reloader.stopping()
        drain(gateway, signals: signals, after: signal)
        // After the drain (until then this node's sessions are still the cluster's to see),
        // and before the admin API stops: peers must not list a node whose API is gone.
        cluster?.stop()
        server.stop()
        peers?.shutdown()
        gateway.shutdown()
        demo?.stop()
        try? demoGroup?.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
        logger.notice("stopped")
    }

    /// Receives everything from the gateway at `path`, takes it over (held), acknowledges,
    /// and starts it: from the acknowledgement on, the sessions are this process's.
    private func takeOver(from path: String, into gateway: Gateway) throws -> HandoffTakeOver {
        let received: HandoffTakeOver
        do {
            received = try HandoffTakeOver(path: path, logger: logger)
        } catch {
            throw StartupError("--take-over \(path): \(error)")
        }
        // Before anything is adopted: the predecessor serves on.
        if let mismatch = AdminTokenCheck.mismatch(predecessorDigest: received.adminTokenDigest, token: settings.token) {
            received.abort(mismatch)
            throw StartupError("--take-over \(path): \(mismatch)")
        }
        // The gateway owns the descriptors from here (it closes those it cannot adopt).
        let handed = received.takeDescriptors()
        let problems = gateway.adoptHandoff(mediators: received.mediators, listeners: handed.listeners,
                                            sessions: handed.sessions, counters: received.counters)
        guard problems.isEmpty else {
            // Better the predecessor keeps everything than this process takes part of it.
            for problem in problems {
                logger.error("handoff: cannot take over", metadata: ["what": "\(problem)"])
            }
            gateway.relinquishAfterHandoff()
            received.abort(problems.joined(separator: "; "))
            throw StartupError("--take-over \(path): \(problems[0])")
        }
        return received
    }

    /// The cluster node a successor stands in for: its predecessor's, whose number the
    /// sessions' ids carry (so the id counter says it). A gateway not in a cluster and a
    /// cluster node do not take over from each other.
    private func joinNode(of received: HandoffTakeOver, from path: String) throws -> Cluster? {
        let number = received.counters.nextSession / ClusterNode.sessionNumberStride
        guard let clusterSettings = settings.cluster else {
            guard number == 0 else {
                throw StartupError("--take-over \(path): the running gateway is node number \(number) of a cluster; start its successor with the same --cluster-db and --node")
            }
            return nil
        }
        guard number > 0 else {
            throw StartupError("--take-over \(path): the running gateway is not in a cluster; its successor cannot join one (leave out --cluster-db)")
        }
        do {
            return try Cluster.open(url: clusterSettings.database, seedListeners: [], seedMediators: [],
                                    nodeNumber: number, logger: logger)
        } catch {
            throw StartupError("--take-over \(path): \(error.description)")
        }
    }

    /// The successor's first save, once the predecessor let go: the file is this process's
    /// from now on. A failure cannot undo the take-over; the next change's save tries again.
    private func saveAfterTakeOver(_ state: StateFile?, _ gateway: Gateway) {
        guard let state else { return }
        do {
            try state.save(gateway)
        } catch {
            logger.error("state file not written after the take-over", metadata: ["reason": "\(error.detail)"])
        }
    }

    /// Acknowledges what `received` holds (everything that can fail is set up by now), waits
    /// for the predecessor to let go, and starts the sessions, the listeners and the admin
    /// server: from here on they are this process's, and nothing may tear them down.
    private func completeTakeOver(_ received: HandoffTakeOver, from path: String, into gateway: Gateway,
                                  admin server: HTTPServer) throws {
        // On a throw, `run` lets go of everything quietly and aborts (the predecessor keeps it).
        do {
            try received.acknowledge()
        } catch {
            throw StartupError("--take-over \(path): could not acknowledge: \(error)")
        }
        // Nothing is touched until the predecessor says it let go (see `HandoffProtocol`).
        switch received.awaitRelease(logInterval: Self.releaseLogInterval) {
        case .released:
            break
        case .predecessorGone(let why):
            logger.warning("handoff: the predecessor ended without releasing; nobody else holds the sockets, taking over",
                           metadata: ["reason": "\(why)", "from_pid": "\(received.predecessor)"])
        case .predecessorResumed(let why):
            // It serves everything again: our copies go without touching a connection.
            throw StartupError("--take-over \(path): the running gateway resumed instead of releasing (\(why)); it serves everything on")
        }
        gateway.startAdopted(from: received.predecessor)
        do {
            try server.startAccepting()
        } catch {
            // The sessions are ours and serve on; only the admin API is missing.
            logger.error("handoff: the admin socket handed over cannot be served", metadata: ["reason": "\(error)"])
        }
    }

    /// How often a successor still waiting, after acknowledging, for the predecessor to let go
    /// says so (it waits for as long as the predecessor keeps the connection open): longer than
    /// the predecessor takes when it runs (admin connections finished in 5 s, descriptors closed).
    static let releaseLogInterval: Duration = .seconds(60)

    /// After a handoff: sessions that ended before it may still be writing their last bytes
    /// (they were not handed over); they are given `flushLimit` to finish before the process
    /// exits, so that none is cut short.
    private func finishFlushing(_ group: RelayLoopGroup) {
        let deadline = ContinuousClock.now + Self.flushLimit
        var left = group.registeredDescriptors()
        while left > 0, ContinuousClock.now < deadline {
            usleep(20_000)
            left = group.registeredDescriptors()
        }
        if left > 0 {
            logger.warning("exiting with connections still writing their last bytes", metadata: ["descriptors": "\(left)"])
        }
    }

    /// How long a process that handed everything off waits for ended sessions' last bytes.
    static let flushLimit: Duration = .seconds(10)

    /// The state file's listeners and mediators when it exists, else the config file's.
    private func restore(into gateway: Gateway, from state: StateFile?) throws {
        if let saved = try state?.load() {
            logger.notice("restoring from the state file", metadata: [
                "state_file": "\(state?.path ?? "")", "listeners": "\(saved.listeners.count)",
                "mediators": "\(saved.mediators.count)",
            ])
            gateway.skipListenerIDs(below: saved.nextListenerNumber)
            for spec in saved.mediators {
                try gateway.registerMediator(spec)
            }
            for (id, spec) in saved.listeners {
                do {
                    _ = try gateway.addListener(spec, id: id)
                } catch {
                    throw StartupError("state file \(state?.path ?? ""): listener \(id) on \(spec.listen): \(error.detail)")
                }
            }
            return
        }
        for spec in settings.mediators {
            try gateway.registerMediator(spec)
        }
        for spec in settings.listeners {
            _ = try gateway.addListener(spec)
        }
    }

    /// Stops accepting, then waits for live sessions to end, at most the grace period (a
    /// second signal cuts it short); the admin API answers meanwhile.
    private func drain(_ gateway: Gateway, signals: SignalWaiter, after signal: Int32) {
        gateway.stopAccepting()
        let live = gateway.sessionCount
        logger.notice("stopping: no new clients accepted", metadata: [
            "signal": "\(signal)", "live_sessions": "\(live)", "grace_period_s": "\(settings.gracePeriod)",
        ])
        let deadline = ContinuousClock.now + .milliseconds(Int64(settings.gracePeriod * 1000))
        while gateway.sessionCount > 0 {
            guard ContinuousClock.now < deadline else {
                logger.notice("grace period over, closing live sessions", metadata: [
                    "live_sessions": "\(gateway.sessionCount)",
                ])
                return
            }
            if let again = signals.next(waitingUpTo: .milliseconds(50)) {
                logger.notice("second signal, closing live sessions now", metadata: [
                    "signal": "\(again)", "live_sessions": "\(gateway.sessionCount)",
                ])
                return
            }
        }
        logger.notice("all sessions ended")
    }
}
