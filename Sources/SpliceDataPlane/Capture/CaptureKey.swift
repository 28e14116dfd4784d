import SpliceCore

/// One synthesized TCP connection of a capture: a capture point of one session.
struct CaptureKey: Hashable {
    /// The session.
    let session: SessionID
    /// The pcapng interface: `client`, `server`, `h3.in`, `h3.out`.
    let point: String
    /// Bumped when the point's connection is replaced (a failover gives `server` a new peer).
    let generation: Int
}
