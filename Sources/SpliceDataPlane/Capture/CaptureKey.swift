import SpliceCore

/// One synthesized TCP connection of a capture: a capture point of one session.
struct CaptureKey: Hashable {
    /// The session.
    let session: SessionID
    /// The capture point (its name is the pcapng interface).
    let point: CapturePoint
    /// Bumped when the point's connection is replaced (a failover gives `server` a new peer).
    let generation: Int
}
