/// A live pcapng capture as a value: interfaces, the TCP connections synthesized on them,
/// and the bytes of the file so far.
///
/// Callers feed it what happened (bytes sent by one side of a connection, a FIN, a reset, a
/// note for the packet comments) and take the file's bytes as they grow. Packets go out only
/// while the reader has room: `room` is what the caller's buffer can still take, and a
/// packet that does not fit is dropped and counted on its interface, which the statistics
/// block at the end reports as `isb_ifdrop`. Section and interface blocks always go out: a
/// file without them cannot be read at all.
///
/// Generic over the key naming a connection, so the data plane keys by session and capture
/// point while tests use plain values.
public struct CaptureWriter<Key: Hashable> {
    /// One capture point.
    public struct Interface: Sendable, Equatable {
        /// `client`, `server`, `h3.in`, …
        public let name: String
        /// Packets the point saw (written and dropped).
        public internal(set) var received: UInt64 = 0
        /// Packets dropped because the reader had no room.
        public internal(set) var dropped: UInt64 = 0
    }

    private struct Connection {
        let interface: Int
        let initiator: CaptureEndpoint
        let responder: CaptureEndpoint
        var tcp: TCPConversation
        var comments: [[String]] = [[], []]
    }

    /// Interfaces in the order of their description blocks (their pcapng numbers).
    public private(set) var interfaces: [Interface] = []
    private var interfaceNumbers: [String: Int] = [:]
    private var connections: [Key: Connection] = [:]
    private var output: [UInt8] = []
    private let started: Pcapng.Microseconds
    /// The statistics blocks have been written; nothing more will be.
    public private(set) var isClosed = false

    /// A file that starts with its section header, at `time`.
    public init(application: String, time: Pcapng.Microseconds) {
        started = time
        Pcapng.appendSectionHeader(application: application, to: &output)
    }

    /// Takes the bytes written since the last call.
    public mutating func take() -> [UInt8] {
        defer { output.removeAll(keepingCapacity: true) }
        return output
    }

    /// Whether nothing waits to be taken.
    public var isDrained: Bool { output.isEmpty }

    /// Whether a connection is known under `key`.
    public func contains(_ key: Key) -> Bool { connections[key] != nil }

    /// Starts a connection on interface `interface` (described on first use) between
    /// `initiator` and `responder`, whose streams are at the given offsets. Nothing is
    /// written until it first sends: its handshake goes with its first packet. Mixed
    /// families are carried as IPv6.
    public mutating func open(_ key: Key, interface name: String, initiator: CaptureEndpoint,
                              responder: CaptureEndpoint, offsets: (initiator: UInt64, responder: UInt64)) {
        guard !isClosed, connections[key] == nil else { return }
        let ipv6 = initiator.isIPv6 || responder.isIPv6
        connections[key] = Connection(
            interface: interfaceNumber(name),
            initiator: ipv6 ? initiator.asIPv6 : initiator, responder: ipv6 ? responder.asIPv6 : responder,
            tcp: TCPConversation(initiatorOffset: offsets.initiator, responderOffset: offsets.responder, ipv6: ipv6))
    }

    /// The handshake of a known connection, if it has not been written yet.
    public mutating func handshake(_ key: Key, time: Pcapng.Microseconds, room: inout Int) {
        guard var connection = connections[key] else { return }
        let segments = connection.tcp.open()
        write(segments, of: &connection, payload: UnsafeRawBufferPointer(start: nil, count: 0), time: time, room: &room)
        connections[key] = connection
    }

    /// Bytes `side` sent on a connection.
    public mutating func send(_ bytes: UnsafeRawBufferPointer, from side: ConversationSide, on key: Key,
                              time: Pcapng.Microseconds, room: inout Int) {
        guard var connection = connections[key] else { return }
        let segments = connection.tcp.send(bytes.count, from: side)
        write(segments, of: &connection, payload: bytes, time: time, room: &room)
        connections[key] = connection
    }

    /// `side` half-closed the connection.
    public mutating func finish(from side: ConversationSide, on key: Key, time: Pcapng.Microseconds, room: inout Int) {
        guard var connection = connections[key] else { return }
        let segments = connection.tcp.finish(from: side)
        write(segments, of: &connection, payload: UnsafeRawBufferPointer(start: nil, count: 0), time: time, room: &room)
        connections[key] = connection
    }

    /// `side` reset the connection.
    public mutating func reset(from side: ConversationSide, on key: Key, time: Pcapng.Microseconds, room: inout Int) {
        guard var connection = connections[key] else { return }
        let segments = connection.tcp.reset(from: side)
        write(segments, of: &connection, payload: UnsafeRawBufferPointer(start: nil, count: 0), time: time, room: &room)
        connections[key] = connection
    }

    /// Whether a connection has ended (reset, or FIN both ways).
    public func isEnded(_ key: Key) -> Bool { connections[key]?.tcp.isClosed ?? true }

    /// Whether `side` of a connection has sent its FIN.
    public func hasFinished(_ side: ConversationSide, on key: Key) -> Bool {
        connections[key]?.tcp.hasFinished(side) ?? true
    }

    /// Attaches `text` as a comment to the next packet `side` sends on the connection.
    public mutating func comment(_ text: String, from side: ConversationSide, on key: Key) {
        connections[key]?.comments[side.rawValue].append(text)
    }

    /// Forgets a connection (its packets are written); its interface stays.
    public mutating func forget(_ key: Key) {
        connections[key] = nil
    }

    /// Keys of every connection, for ending them all.
    public var keys: [Key] { Array(connections.keys) }

    /// Ends the file: one statistics block per interface.
    public mutating func close(time: Pcapng.Microseconds) {
        guard !isClosed else { return }
        isClosed = true
        for (number, interface) in interfaces.enumerated() {
            Pcapng.appendInterfaceStatistics(interface: UInt32(number), timestamp: time, start: started,
                                             received: interface.received, dropped: interface.dropped, to: &output)
        }
    }

    // MARK: private

    private mutating func interfaceNumber(_ name: String) -> Int {
        if let number = interfaceNumbers[name] { return number }
        let number = interfaces.count
        interfaces.append(Interface(name: name))
        interfaceNumbers[name] = number
        Pcapng.appendInterfaceDescription(name: name, linkType: TCPPacket.linkType, to: &output)
        return number
    }

    private mutating func write(_ segments: [TCPSegment], of connection: inout Connection,
                                payload: UnsafeRawBufferPointer, time: Pcapng.Microseconds, room: inout Int) {
        let ipv6 = connection.initiator.isIPv6
        for segment in segments {
            let comments = connection.comments[segment.side.rawValue]
            let size = Pcapng.enhancedPacketSize(
                packet: TCPPacket.length(payload: segment.payload.count, ipv6: ipv6), comments: comments)
            interfaces[connection.interface].received += 1
            guard size <= room else {
                interfaces[connection.interface].dropped += 1
                continue
            }
            room -= size
            connection.comments[segment.side.rawValue] = []
            let (source, destination) = segment.side == .initiator
                ? (connection.initiator, connection.responder) : (connection.responder, connection.initiator)
            Pcapng.appendEnhancedPacket(interface: UInt32(connection.interface), timestamp: time,
                                        comments: comments, to: &output) { packet in
                TCPPacket.append(segment, from: source, to: destination,
                                 payload: UnsafeRawBufferPointer(rebasing: payload[segment.payload]), to: &packet)
            }
        }
    }
}
