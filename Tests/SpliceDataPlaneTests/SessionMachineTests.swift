import SpliceCore
import Testing

@testable import SpliceDataPlane

/// The session's lifecycle decisions without sockets: each event with its facts in, the
/// action out, in the orders the relay core can deliver them.
@Suite("Session lifecycle state machine")
struct SessionMachineTests {
    private let id = SessionID(number: 7)

    /// A machine whose server is connected and whose templates are in.
    private func relaying() -> SessionMachine {
        var machine = SessionMachine()
        #expect(machine.serverConnected(socketOpen: true) == .applyTemplates)
        #expect(machine.templatesApplied() == true)
        return machine
    }

    // MARK: connecting

    @Test("a new session connects, holds its reads until the templates are in, then relays")
    func connectThenRelay() {
        var machine = SessionMachine()
        #expect(machine.state == .connecting)
        #expect(!machine.readsEnabled)
        #expect(machine.serverConnected(socketOpen: true) == .applyTemplates)
        #expect(machine.state == .open)
        #expect(!machine.readsEnabled, "templates first, so they all start at offset 0")
        #expect(machine.templatesApplied() == true)
        #expect(machine.readsEnabled)
    }

    @Test("a server that hung up before it was wired in ends the session as a server error")
    func serverClosedBeforeWiring() {
        var machine = SessionMachine()
        #expect(machine.serverConnected(socketOpen: false) == .end(.serverError))
    }

    @Test("a session killed while dialing discards the server socket when it opens, and reads never start")
    func killedWhileDialing() {
        var machine = SessionMachine()
        #expect(machine.end(.killed) == true)
        #expect(machine.state == .closing)
        #expect(machine.serverConnected(socketOpen: true) == .discard)
        #expect(machine.templatesApplied() == false)
        #expect(!machine.readsEnabled)
        #expect(machine.upstreamFailed() == nil, "a dial that fails after a kill does not end it a second time")
    }

    @Test("an upstream that cannot be reached ends a connecting session")
    func upstreamUnreachable() {
        var machine = SessionMachine()
        let reason = machine.upstreamFailed()
        #expect(reason == .upstreamUnreachable)
        #expect(machine.end(reason!) == true)
        #expect(machine.phase == .ended(.upstreamUnreachable))
    }

    // MARK: EOF

    @Test("an endpoint's EOF passes on over a flowing link, and waits on a paused one")
    func endpointEOF() {
        let machine = relaying()
        for port in [SessionMachine.PortKind.client, .server] {
            #expect(machine.inputClosed(.init(port: port, clientSentEOF: true, outLink: .flowing)) == .propagateEOF)
            #expect(machine.inputClosed(.init(port: port, clientSentEOF: true, outLink: .paused)) == .hold)
            #expect(machine.inputClosed(.init(port: port, clientSentEOF: true, outLink: .none)) == .hold)
        }
    }

    @Test("the server's EOF while the client still talks hands over to a replica, if there is one")
    func serverEOFWithReplica() {
        let machine = relaying()
        let facts = SessionMachine.InputClosed(port: .server, clientSentEOF: false, hasReplica: true)
        guard case .promoteReplica = machine.inputClosed(facts) else {
            Issue.record("expected a promotion")
            return
        }
        var afterClient = facts
        afterClient.clientSentEOF = true
        #expect(machine.inputClosed(afterClient) == .propagateEOF, "a client that is done needs no replica")
        var noReplica = facts
        noReplica.hasReplica = false
        #expect(machine.inputClosed(noReplica) == .propagateEOF)
    }

    @Test("a mediator's EOF finishes its drain, or is its failure while it is still fed")
    func mediatorEOF() {
        let machine = relaying()
        #expect(machine.inputClosed(.init(port: .hop(draining: true), outputClosing: true)) == .finishDrain)
        guard case .mediatorFailed = machine.inputClosed(.init(port: .hop(draining: false))) else {
            Issue.record("an EOF from a mediator still being fed is a failure")
            return
        }
        // Its input half-closed as the session's EOF passed through it: the EOF goes on.
        #expect(machine.inputClosed(.init(port: .hop(draining: false), outputClosing: true)) == .propagateEOF)
    }

    @Test("EOFs after the end are not acted on")
    func eofAfterEnd() {
        var machine = relaying()
        #expect(machine.end(.killed) == true)
        #expect(machine.inputClosed(.init(port: .client)) == .hold)
        #expect(machine.inputClosed(.init(port: .hop(draining: true))) == .hold)
    }

    @Test("the session completes once both directions' EOFs reached their endpoints, in either order",
          arguments: [[Direction.clientToServer, .serverToClient], [.serverToClient, .clientToServer]])
    func completes(order: [Direction]) {
        var machine = relaying()
        machine.eofSentToEndpoint()
        #expect(machine.state == .halfClosed)
        #expect(machine.endpointFinished(order[0]) == nil)
        #expect(machine.endpointFinished(order[0]) == nil, "the same direction twice is still one")
        #expect(machine.endpointFinished(order[1]) == .completed)
    }

    @Test("a half-close that completes after the session ended does not end it again")
    func finishedAfterEnd() {
        var machine = relaying()
        #expect(machine.endpointFinished(.clientToServer) == nil)
        #expect(machine.end(.idle) == true)
        #expect(machine.endpointFinished(.serverToClient) == nil)
        #expect(machine.phase == .ended(.idle))
    }

    // MARK: failures

    @Test("a broken port: the client ends the session, the server too unless a replica takes over")
    func brokenEndpoints() {
        let machine = relaying()
        #expect(machine.portBroke(.client, "reset", hasReplica: true) == .end(.clientError))
        #expect(machine.portBroke(.server, "reset", hasReplica: false) == .end(.serverError))
        #expect(machine.portBroke(.server, "reset", hasReplica: true) == .promoteReplica("server failed: reset"))
    }

    @Test("a broken mediator goes to its hop's policy, a broken recipient drops its split")
    func brokenMediatorAndRecipient() {
        let machine = relaying()
        #expect(machine.portBroke(.hop(draining: false), "reset", hasReplica: false) == .mediatorFailed("reset"))
        #expect(machine.portBroke(.split, "reset", hasReplica: false) == .dropSplit("recipient failed: reset"))
    }

    @Test("a port closed after a clean exchange both ways, or any failure after the end, is not acted on")
    func nothingToActOn() {
        var machine = relaying()
        #expect(machine.portBroke(.client, "connection closed", cleanClose: true, hasReplica: false) == .ignore)
        #expect(machine.end(.completed) == true)
        for port in [SessionMachine.PortKind.client, .server, .hop(draining: false), .split] {
            #expect(machine.portBroke(port, "closed", hasReplica: true) == .ignore)
        }
    }

    // MARK: ending

    @Test("the first reason to end is the one kept")
    func firstReasonWins() {
        var machine = relaying()
        #expect(machine.end(.clientError) == true)
        #expect(machine.end(.completed) == false)
        #expect(machine.phase == .ended(.clientError))
        #expect(machine.state == .closing)
    }

    @Test("how ports close: endpoints reset when the stream was cut, recipients get their copy of a completed session")
    func closeModes() {
        for reason in CloseReason.allCases {
            let endpoint = SessionMachine.closeMode(of: .client, endingFor: reason)
            #expect(endpoint == (reason.cutsTheStream ? .reset : .now), "\(reason)")
            #expect(SessionMachine.closeMode(of: .server, endingFor: reason) == endpoint)
            #expect(SessionMachine.closeMode(of: .split, endingFor: reason) == (reason == .completed ? .afterFlush : .now))
            #expect(SessionMachine.closeMode(of: .hop(draining: false), endingFor: reason) == .now)
        }
    }

    // MARK: reconfiguration

    @Test("changes are refused while connecting and once closing")
    func refusedOutsideOpen() {
        var machine = SessionMachine()
        #expect(machine.refusal([.clientToServer], session: id) { _ in false } == "session s7 is still connecting")
        _ = machine.serverConnected(socketOpen: true)
        #expect(machine.refusal([.clientToServer], session: id) { _ in false } == nil)
        _ = machine.end(.killed)
        #expect(machine.refusal([.clientToServer], session: id) { _ in false } == "session s7 is closing")
    }

    @Test("one change at a time per direction; the other direction stays free; a direction past EOF is refused")
    func oneChangePerDirection() {
        var machine = relaying()
        machine.beginReconfiguring([.clientToServer])
        #expect(machine.refusal([.clientToServer], session: id) { _ in false } != nil)
        #expect(machine.refusal([.serverToClient, .clientToServer], session: id) { _ in false } != nil)
        #expect(machine.refusal([.serverToClient], session: id) { _ in false } == nil)
        #expect(machine.refusal([.serverToClient], session: id) { $0 == .serverToClient }
            == "server_to_client has reached EOF")
        machine.endReconfiguring([.clientToServer])
        #expect(machine.refusal([.clientToServer], session: id) { _ in false } == nil)
    }
}
