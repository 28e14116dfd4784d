import Foundation
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane
import SpliceHandoff
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The handoff protocol's messages over a real Unix socket pair, descriptors included.
@Suite("Handoff protocol")
struct HandoffProtocolTests {
    /// A connected pair of channels (a real AF_UNIX stream socket pair).
    private func pair() -> (HandoffChannel, HandoffChannel) {
        var fds: [Int32] = [-1, -1]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        precondition(rc == 0, "socketpair")
        return (HandoffChannel(fd: fds[0]), HandoffChannel(fd: fds[1]))
    }

    /// A pipe whose read end is returned with the write end: what arrives as a descriptor
    /// must be the same open file (a byte written to the original is read from the copy).
    private func pipePair() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0)
        return (fds[0], fds[1])
    }

    private func isSameFile(_ received: Int32, writingTo original: Int32) -> Bool {
        var byte: UInt8 = 0x5a
        guard write(original, &byte, 1) == 1 else { return false }
        var back: UInt8 = 0
        return read(received, &back, 1) == 1 && back == 0x5a
    }

    @Test("a session's state, pending bytes and both descriptors survive the trip")
    func sessionRoundTrip() throws {
        let (a, b) = pair()
        defer { a.close(); b.close() }
        let client = pipePair(), server = pipePair()
        defer { [client.read, client.write, server.read, server.write].forEach { _ = close($0) } }
        let state = HandoffSessionState(
            id: SessionID(number: 42), listener: ListenerID(number: 3), client: "127.0.0.1:50000",
            server: "127.0.0.1:9000", openedAt: Date(timeIntervalSince1970: 1_700_000_000.123456),
            bytes: ByteCounts(clientToServer: UInt64.max - 5, serverToClient: 1 << 40),
            clientPending: Array(repeating: 7, count: 70_000), serverPending: [1, 2, 3])
        try a.send(HandoffMessage.session(HandoffSession(state: state, clientFD: client.read, serverFD: server.read)).frame)
        guard case .session(let got) = try HandoffMessage(b.receive()) else {
            Issue.record("not a session")
            return
        }
        defer { _ = close(got.clientFD); _ = close(got.serverFD) }
        #expect(got.state.id == state.id)
        #expect(got.state.listener == state.listener)
        #expect(got.state.client == state.client && got.state.server == state.server)
        #expect(got.state.bytes == state.bytes)
        #expect(got.state.clientPending == state.clientPending)
        #expect(got.state.serverPending == state.serverPending)
        #expect(abs(got.state.openedAt.timeIntervalSince(state.openedAt)) < 0.000_002)
        #expect(got.clientFD != client.read && got.serverFD != server.read)
        #expect(isSameFile(got.clientFD, writingTo: client.write))
        #expect(isSameFile(got.serverFD, writingTo: server.write))
    }

    @Test("hops (TCP and exec legs) and splits (attached with a replica's backlog, dropped) survive the trip")
    func hopsAndSplitsRoundTrip() throws {
        let (a, b) = pair()
        defer { a.close(); b.close() }
        // client, server, a TCP leg, an exec leg's stdout, stdin and pidfd, a split leg
        let pipes = (0..<7).map { _ in pipePair() }
        defer { pipes.forEach { _ = close($0.read); _ = close($0.write) } }
        let request = HopRequest(target: .registered(MediatorName("upper")), directions: .both, position: 0,
                                 onFailure: .bypass, drainTimeoutMs: 750)
        let hop = HandoffHopState(id: HopID(number: 7), mediator: MediatorName("upper"), target: "127.0.0.1:9100",
                                  request: request, legs: [
            HandoffHopLegState(direction: .clientToServer, splicedAt: 10, fed: 1 << 33, emitted: 99, pending: [9, 9]),
            HandoffHopLegState(direction: .serverToClient, splicedAt: 0, fed: 5, emitted: 4, pending: [], pid: 4242),
        ])
        let replica = SplitRequest(address: HostPort(host: "127.0.0.1", port: 9200), directions: .clientToServer,
                                   onSlow: .block, failover: true)
        let live = HandoffSplitState(id: SplitID(number: 3), request: replica, state: .active, reason: nil, isReplica: true,
                                     legs: [HandoffSplitLegState(direction: .clientToServer, fromOffset: 0, sent: 500,
                                                                 discarded: 480, unsentAtDrop: 0, pending: [1, 2, 3],
                                                                 backlog: [4, 5], backlogStart: 478)])
        let dropped = HandoffSplitState(
            id: SplitID(number: 4), request: SplitRequest(address: HostPort(host: "127.0.0.1", port: 9300),
                                                          directions: .serverToClient),
            state: .dropped, reason: "slow: more than 1048576 bytes behind", isReplica: false,
            legs: [HandoffSplitLegState(direction: .serverToClient, fromOffset: 12, sent: 40, discarded: 0,
                                        unsentAtDrop: 8, pending: [], backlog: [], backlogStart: 0)])
        let state = HandoffSessionState(
            id: SessionID(number: 9), listener: ListenerID(number: 1), client: "127.0.0.1:50000", server: "127.0.0.1:9200",
            openedAt: Date(timeIntervalSince1970: 1_700_000_000), bytes: ByteCounts(clientToServer: 500, serverToClient: 480),
            clientPending: [7], serverPending: [8, 8], reads: ByteCounts(clientToServer: 501, serverToClient: 470),
            hops: [hop], splits: [live, dropped],
            linkOffsets: [.clientToServer: [500, 490], .serverToClient: [470, 480]])
        #expect(state.descriptorCount == 7)
        let sent = HandoffSession(state: state, clientFD: pipes[0].read, serverFD: pipes[1].read,
                                  legFDs: pipes[2...].map(\.read))
        try a.send(HandoffMessage.session(sent).frame)
        guard case .session(let got) = try HandoffMessage(b.receive()) else {
            Issue.record("not a session")
            return
        }
        defer { got.fds.forEach { _ = close($0) } }
        #expect(got.state == state)
        #expect(got.fds.count == 7)
        for (received, original) in zip(got.fds, pipes) {
            #expect(isSameFile(received, writingTo: original.write))
        }
    }

    @Test("a session whose descriptors do not match its legs is refused")
    func legDescriptorsMismatch() throws {
        let hop = HandoffHopState(
            id: HopID(number: 1), mediator: nil, target: "127.0.0.1:1",
            request: HopRequest(target: .address(HostPort(host: "127.0.0.1", port: 1)), directions: .clientToServer),
            legs: [HandoffHopLegState(direction: .clientToServer, splicedAt: 0, fed: 0, emitted: 0, pending: [], pid: 77)])
        let state = HandoffSessionState(
            id: SessionID(number: 1), listener: ListenerID(number: 1), client: "a", server: "b", openedAt: Date(),
            bytes: ByteCounts(clientToServer: 0, serverToClient: 0), clientPending: [], serverPending: [], hops: [hop],
            linkOffsets: [.clientToServer: [0, 0], .serverToClient: [0]])
        var frame = HandoffMessage.session(HandoffSession(state: state, clientFD: 0, serverFD: 1, legFDs: [2])).frame
        frame.fds = [0, 1, 2]  // an exec leg needs three
        #expect(throws: HandoffError.self) { try HandoffMessage(frame) }
    }

    @Test("listener, end, hello, ack and refusal round-trip")
    func controlMessages() throws {
        let (a, b) = pair()
        defer { a.close(); b.close() }
        let socket = pipePair()
        defer { _ = close(socket.read); _ = close(socket.write) }
        let spec = ListenerSpec(listen: HostPort(host: "127.0.0.1", port: 7001), upstream: HostPort(host: "127.0.0.1", port: 9))
        let listener = HandoffListenerState(id: ListenerID(number: 2), spec: spec, createdAt: Date(timeIntervalSince1970: 1_000),
                                            totalSessions: 10, upstreamFailures: 1, rejectedSessions: 2)
        let counters = HandoffCounters(nextSession: 51, nextHop: 4, nextSplit: 9, nextListener: 3, nextCapture: 2)
        try a.send(HandoffMessage.hello(version: HandoffProtocol.version, pid: 1234).frame)
        try a.send(HandoffMessage.listener(HandoffListener(state: listener, fd: socket.read)).frame)
        try a.send(HandoffMessage.end(counters, sessions: 50, listeners: 1, pid: 99).frame)
        try a.send(HandoffMessage.ack(sessions: 50, listeners: 1).frame)
        try a.send(HandoffMessage.refused(reason: "session s12 has a hop").frame)
        guard case .hello(let version, let pid) = try HandoffMessage(b.receive()) else { Issue.record("hello"); return }
        #expect(version == HandoffProtocol.version && pid == 1234)
        guard case .listener(let got) = try HandoffMessage(b.receive()) else { Issue.record("listener"); return }
        defer { _ = close(got.fd) }
        #expect(got.state == listener)
        #expect(isSameFile(got.fd, writingTo: socket.write))
        guard case .end(let gotCounters, 50, 1, 99) = try HandoffMessage(b.receive()) else { Issue.record("end"); return }
        #expect(gotCounters == counters)
        guard case .ack(50, 1) = try HandoffMessage(b.receive()) else { Issue.record("ack"); return }
        guard case .refused(let reason) = try HandoffMessage(b.receive()) else { Issue.record("refused"); return }
        #expect(reason == "session s12 has a hop")
    }

    @Test("a frame announcing descriptors that did not come is refused, naming the count")
    func missingDescriptors() throws {
        let (a, b) = pair()
        defer { a.close(); b.close() }
        var frame = HandoffMessage.admin(fd: 0, tokenDigest: nil).frame
        frame.fds = []  // the header still says 1
        try a.send(frame)
        #expect(throws: HandoffError.self) { try b.receive() }
    }

    @Test("malformed frames are refused with a reason: bad lengths, a field missing, an unknown type")
    func malformed() throws {
        #expect(throws: HandoffError.self) { try HandoffFrame.lengths([0, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: HandoffError.self) { try HandoffFrame.lengths([0xff, 0, 0, 0, 0, 0, 0, 0]) }
        #expect(throws: HandoffError.self) { try HandoffMessage(HandoffFrame(type: "hello", ["pid": 1])) }
        #expect(throws: HandoffError.self) { try HandoffMessage(HandoffFrame(type: "teleport")) }
        let badPending = HandoffFrame(type: "session", [
            "id": "s1", "listener": "l1", "client": "a", "server": "b", "opened_at_us": 0, "bytes_to_server": 0,
            "bytes_to_client": 0, "client_pending": 5, "server_pending": 0,
        ], payload: [1, 2])
        #expect(throws: HandoffError.self) { try HandoffMessage(badPending) }
    }

    @Test("integers out of range are refused, never trapped on: negative or huge counts, sums, pids")
    func integersOutOfRange() throws {
        func session(_ clientPending: JSON, _ serverPending: JSON) -> HandoffFrame {
            HandoffFrame(type: "session", [
                "id": "s1", "listener": "l1", "client": "a", "server": "b", "opened_at_us": 0, "bytes_to_server": 0,
                "bytes_to_client": 0, "client_pending": clientPending, "server_pending": serverPending,
            ], payload: [1, 2])
        }
        // Sent over a real socket, as a predecessor would.
        let (a, b) = pair()
        defer { a.close(); b.close() }
        for frame in [
            session(.int(-1), .int(0)), session(.int(0), .int(Int64.min)), session(.int(Int64.max), .int(Int64.max)),
            session(.int(1 << 62), .int(1 << 62)),
            HandoffFrame(type: "ack", ["sessions": .int(-1), "listeners": .int(0)]),
            HandoffFrame(type: "ack", ["sessions": .int(0), "listeners": .int(Int64.min)]),
            HandoffFrame(type: "end", ["next_session": 1, "next_hop": 1, "next_split": 1, "next_listener": 1,
                                       "next_capture": 1, "sessions": .int(-5), "listeners": 0, "pid": 1]),
            HandoffFrame(type: "end", ["next_session": 1, "next_hop": 1, "next_split": 1, "next_listener": 1,
                                       "next_capture": 1, "sessions": 0, "listeners": 0, "pid": .int(-1)]),
            HandoffFrame(type: "hello", ["version": 3, "pid": .int(Int64(Int32.max) + 1)]),
        ] {
            try a.send(frame)
            let received = try b.receive()
            #expect(throws: HandoffError.self) { try HandoffMessage(received) }
        }
    }

    @Test("descriptors a message does not take are closed: a refused frame's, extras on a hello")
    func untakenDescriptorsClosed() throws {
        let (a, b) = pair()
        defer { a.close(); b.close() }
        let first = pipePair(), second = pipePair()
        defer { [first.write, second.write].forEach { _ = close($0) } }
        // A hello carrying a descriptor it has no use for, then a frame refused outright.
        var hello = HandoffMessage.hello(version: HandoffProtocol.version, pid: 77).frame
        hello.header["fds"] = 1
        hello.fds = [first.read]
        try a.send(hello)
        try a.send(HandoffFrame(type: "teleport", fds: [second.read]))
        close(first.read)
        close(second.read)
        guard case .hello = try b.receiveMessage() else {
            Issue.record("not a hello")
            return
        }
        #expect(throws: HandoffError.self) { try b.receiveMessage() }
        // With every copy of a read end closed, its write end reports an error.
        for end in [first.write, second.write] {
            var poll = pollfd(fd: end, events: Int16(POLLOUT), revents: 0)
            #expect(Glibc.poll(&poll, 1, 0) == 1 && poll.revents & Int16(POLLERR) != 0)
        }
    }

    @Test("a frame past the payload limit is refused by its sender, not sent (nor trapped on)")
    func oversizedFrame() throws {
        let (a, b) = pair()
        defer { a.close(); b.close() }
        let frame = HandoffFrame(type: "session", payload: [UInt8](repeating: 7, count: HandoffFrame.maxPayloadBytes + 1))
        #expect(throws: HandoffError.self) { try frame.encoded() }
        #expect(throws: HandoffError.self) { try a.send(frame) }
        // Nothing went out: the next frame is the first the other side reads.
        try a.send(HandoffMessage.released.frame)
        guard case .released = try HandoffMessage(b.receive()) else { Issue.record("released"); return }
    }

    @Test("the other side closing mid-frame is an error, not a hang")
    func closedMidFrame() throws {
        let (a, b) = pair()
        defer { b.close() }
        let bytes = try HandoffMessage.refused(reason: "x").frame.encoded()
        _ = bytes.withUnsafeBytes { write(a.fd, $0.baseAddress!, 5) }
        a.close()
        #expect(throws: HandoffError.self) { try b.receive() }
    }
}
