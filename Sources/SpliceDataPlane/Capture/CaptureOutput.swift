/// Where a live capture's file goes: the reader's bounded buffer (the admin API's stream).
///
/// Called from event loops under the capture's lock, so it must never block.
public protocol CaptureOutput: AnyObject, Sendable {
    /// Bytes the buffer can still take; packets that do not fit are dropped and counted.
    var room: Int { get }
    /// Queues bytes regardless of room (the capture checked room for its packets; section,
    /// interface and statistics blocks are small and must not be lost).
    func append(_ bytes: [UInt8])
    /// Ends the stream once what is queued has been read.
    func finish()
    /// Whether the reader has gone: nothing more is wanted.
    var isReleased: Bool { get }
    /// Runs `body` once the reader has gone (at once if it has).
    func onReaderGone(_ body: @escaping @Sendable () -> Void)
}
