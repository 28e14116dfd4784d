import Foundation

/// What a live capture records: which points of a session and which directions.
public struct CaptureRequest: Sendable, Equatable {
    /// Which capture points become pcapng interfaces.
    public enum Points: String, Sendable, CaseIterable {
        /// The client leg and the server leg.
        case edges
        /// The edges plus the input and output of every hop.
        case hops
    }

    /// Capture points.
    public var points: Points
    /// Directions whose bytes are recorded (the handshake, ACKs and FINs go either way).
    public var directions: DirectionSelection
    /// The most bytes waiting for the reader before packets are dropped.
    public var bufferBytes: Int

    /// The default buffer: enough for a burst, small enough to hold per reader.
    public static let defaultBufferBytes = 8 << 20
    /// Buffers a request may ask for.
    public static let bufferBytesRange = (64 << 10)...(256 << 20)

    /// A request from its parts.
    public init(points: Points = .edges, directions: DirectionSelection = .both,
                bufferBytes: Int = CaptureRequest.defaultBufferBytes) {
        self.points = points
        self.directions = directions
        self.bufferBytes = bufferBytes
    }
}

/// A view of one live capture, safe to hand to any thread (listed on the session object).
public struct CaptureSnapshot: Sendable, Equatable {
    /// Capture id (`c4`).
    public var id: CaptureID
    /// The listener whose sessions it records, nil for a capture of one session.
    public var listener: ListenerID?
    /// What it records.
    public var request: CaptureRequest
    /// When it started.
    public var startedAt: Date
    /// Packets written to the reader.
    public var packets: UInt64
    /// Packets dropped because the reader fell behind.
    public var dropped: UInt64

    /// A snapshot from its parts.
    public init(id: CaptureID, listener: ListenerID?, request: CaptureRequest, startedAt: Date,
                packets: UInt64, dropped: UInt64) {
        self.id = id
        self.listener = listener
        self.request = request
        self.startedAt = startedAt
        self.packets = packets
        self.dropped = dropped
    }
}
