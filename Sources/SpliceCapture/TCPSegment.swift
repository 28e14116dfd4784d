/// The TCP flags a synthesized segment may carry.
public struct TCPFlags: OptionSet, Sendable, Hashable {
    /// The flag bits as in the TCP header.
    public let rawValue: UInt8
    /// Flags from their bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
}

/// Which end of a conversation sends a segment.
public enum ConversationSide: Int, Sendable, Hashable {
    /// The end that opened the connection (the client side).
    case initiator = 0
    /// The end that accepted it (the server side).
    case responder = 1

    /// The other end.
    public var peer: ConversationSide { self == .initiator ? .responder : .initiator }
}

/// One segment a `TCPConversation` decided to send: its header fields and which bytes of
/// the caller's payload it carries.
public struct TCPSegment: Sendable, Equatable {
    /// Who sends it.
    public var side: ConversationSide
    /// Sequence number of its first byte (or of the SYN/FIN).
    public var sequence: UInt32
    /// Acknowledgement number (meaningful with `.ack`).
    public var acknowledgement: UInt32
    /// Flags.
    public var flags: TCPFlags
    /// The slice of the payload handed to the conversation that this segment carries.
    public var payload: Range<Int>
}
