/// What a `RelaySocket` tells its owner, always on the socket's loop. Reads happen only
/// while `mayRead` is true: holding them back leaves the bytes in the kernel, and TCP
/// slows the sender (back-pressure without a buffer of ours).
public protocol RelaySocketDelegate: AnyObject {
    /// Whether the owner takes input now.
    var mayRead: Bool { get }
    /// When a reset arrives while `mayRead` is false: whether the socket fails at once,
    /// the bytes before the reset unread (true: a peer that is not reading holds the
    /// input back, and may never read), or waits until the owner reads them and then the
    /// reset (false: the hold ends by itself, e.g. while the other side is being dialled).
    var dropsInputOnReset: Bool { get }
    /// Bytes read. They live in the loop's scratch buffer: valid only during the call.
    func received(_ bytes: UnsafeRawBufferPointer)
    /// The peer ended its output (EOF); no more `received` follows.
    func inputClosed()
    /// Output queued past the high-water mark has drained to the low-water mark.
    func becameWritable()
    /// A read, write or shutdown failed (reset, broken pipe); `closed` follows.
    func failed(_ error: RelayIOError)
    /// The socket is closed, whoever closed it. The last call; the socket lets go of its
    /// delegate after it.
    func closed()
}

extension RelaySocketDelegate {
    public var dropsInputOnReset: Bool { true }
}
