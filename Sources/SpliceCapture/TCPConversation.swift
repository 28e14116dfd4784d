/// The sequence-number bookkeeping of one synthesized TCP connection.
///
/// Sequence numbers follow the stream offsets: the byte at offset `n` of a side's stream is
/// sent with sequence number `n + 1` (mod 2³²), so a capture that starts mid-stream opens with
/// a SYN whose ISN sits just before the current offset and Wireshark sees no gap. Every data
/// segment is acknowledged at once by the peer, so no more than one segment is ever in flight
/// and the constant 65,535-byte window is never full.
///
/// A value type that returns the segments to send, so it is tested without sockets or files.
public struct TCPConversation: Sendable {
    /// The window every segment advertises.
    public static let window: UInt16 = 65535
    /// The largest payload a segment carries so that the IP packet stays within 65,535 bytes.
    public let maxPayload: Int
    private var next: (UInt32, UInt32)
    private var finished = (false, false)
    /// The handshake has been sent.
    public private(set) var isOpen = false
    /// A reset was sent, or both sides sent FIN: nothing more will be.
    public private(set) var isClosed = false

    /// A connection whose sides' streams are at `initiatorOffset` and `responderOffset`
    /// when the capture begins.
    public init(initiatorOffset: UInt64, responderOffset: UInt64, ipv6: Bool) {
        next = (Self.sequence(at: initiatorOffset), Self.sequence(at: responderOffset))
        maxPayload = 65535 - (ipv6 ? 40 : 20) - 20
    }

    /// The sequence number of the byte at `offset`.
    public static func sequence(at offset: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: offset &+ 1)
    }

    /// Whether `side` has sent its FIN.
    public func hasFinished(_ side: ConversationSide) -> Bool {
        side == .initiator ? finished.0 : finished.1
    }

    /// SYN, SYN-ACK, ACK (nothing if already open).
    public mutating func open() -> [TCPSegment] {
        guard !isOpen else { return [] }
        isOpen = true
        let (initiator, responder) = (next.0, next.1)
        return [
            TCPSegment(side: .initiator, sequence: initiator &- 1, acknowledgement: 0, flags: .syn, payload: 0..<0),
            TCPSegment(side: .responder, sequence: responder &- 1, acknowledgement: initiator, flags: [.syn, .ack], payload: 0..<0),
            TCPSegment(side: .initiator, sequence: initiator, acknowledgement: responder, flags: .ack, payload: 0..<0),
        ]
    }

    /// `count` bytes sent by `side`, cut into segments of at most `maxPayload`, each
    /// acknowledged by the peer. Opens the connection first if it is not yet open; nothing
    /// after that side's FIN or a reset.
    public mutating func send(_ count: Int, from side: ConversationSide) -> [TCPSegment] {
        guard count > 0, !isClosed, !hasFinished(side) else { return [] }
        var segments = open()
        var start = 0
        while start < count {
            let end = min(count, start + maxPayload)
            let sequence = self[side]
            self[side] = sequence &+ UInt32(truncatingIfNeeded: end - start)
            segments.append(TCPSegment(side: side, sequence: sequence, acknowledgement: self[side.peer],
                                       flags: [.psh, .ack], payload: start..<end))
            segments.append(acknowledgement(by: side.peer))
            start = end
        }
        return segments
    }

    /// `side`'s FIN and the peer's acknowledgement (once per side).
    public mutating func finish(from side: ConversationSide) -> [TCPSegment] {
        guard !isClosed, !hasFinished(side) else { return [] }
        var segments = open()
        let sequence = self[side]
        self[side] = sequence &+ 1
        if side == .initiator { finished.0 = true } else { finished.1 = true }
        segments.append(TCPSegment(side: side, sequence: sequence, acknowledgement: self[side.peer],
                                   flags: [.fin, .ack], payload: 0..<0))
        segments.append(acknowledgement(by: side.peer))
        if finished.0 && finished.1 { isClosed = true }
        return segments
    }

    /// A reset sent by `side`; the connection is over.
    public mutating func reset(from side: ConversationSide) -> [TCPSegment] {
        guard !isClosed else { return [] }
        var segments = open()
        isClosed = true
        segments.append(TCPSegment(side: side, sequence: self[side], acknowledgement: self[side.peer],
                                   flags: [.rst, .ack], payload: 0..<0))
        return segments
    }

    /// A pure ACK from `side` of everything its peer sent.
    private func acknowledgement(by side: ConversationSide) -> TCPSegment {
        TCPSegment(side: side, sequence: self[side], acknowledgement: self[side.peer], flags: .ack, payload: 0..<0)
    }

    private subscript(side: ConversationSide) -> UInt32 {
        get { side == .initiator ? next.0 : next.1 }
        set { if side == .initiator { next.0 = newValue } else { next.1 = newValue } }
    }
}
