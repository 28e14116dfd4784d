import CMicroHTTPD
import Synchronization

/// A response body produced over time, e.g. a Server-Sent Events stream.
///
/// Producers `write` from any thread; the server pulls the bytes through
/// `MHD_create_response_from_callback`. When nothing is pending the
/// connection is suspended (`MHD_suspend_connection`) rather than polled,
/// and a write resumes it, so an idle stream holds no thread and burns no
/// CPU. A suspended connection does not notice a vanished client; it finds
/// out at its next write (SSE keep-alive comments serve that purpose).
public final class StreamSource: ParkedResponse {
    private struct State: Sendable {
        var pending: [UInt8] = []
        var head = 0
        var finished = false
        var aborted = false
        // The MHD connection while the response is live; guarded by the lock
        // so a resume can never race the reader's suspend.
        var connection = SuspendableConnection()
        var pendingCount: Int { pending.count - head }
    }

    private let state = Mutex(State())
    /// The most bytes `write` buffers before refusing more.
    public let maxBufferedBytes: Int
    /// The block size MHD asks the reader for.
    public let blockSize: Int
    /// What the stream ends with when its process hands off to a successor (an SSE comment
    /// for an event stream; nothing for a file, whose last block is its producer's).
    public let handoffNote: [UInt8]

    /// A stream that buffers at most `maxBufferedBytes` not yet sent.
    public init(maxBufferedBytes: Int = 1 << 20, blockSize: Int = 4096, handoffNote: [UInt8] = []) {
        self.maxBufferedBytes = maxBufferedBytes
        self.blockSize = blockSize
        self.handoffNote = handoffNote
    }

    /// Queues bytes for the client. False, and nothing queued, once the
    /// stream is finished or released, or when the buffer would overflow.
    @discardableResult
    public func write(_ bytes: some Collection<UInt8>) -> Bool {
        state.withLock { state in
            guard !state.finished, !state.connection.isReleased,
                state.pendingCount + bytes.count <= maxBufferedBytes
            else { return false }
            state.pending.append(contentsOf: bytes)
            wake(&state)
            return true
        }
    }

    /// Bytes `write` would still take.
    public var room: Int {
        state.withLock { maxBufferedBytes - $0.pendingCount }
    }

    /// Queues bytes past the limit: for a producer that checked `room` for most of what it
    /// writes and must not lose the rest (a capture's interface blocks). False once the
    /// stream is finished or released.
    @discardableResult
    public func writeRegardless(_ bytes: some Collection<UInt8>) -> Bool {
        state.withLock { state in
            guard !state.finished, !state.connection.isReleased else { return false }
            state.pending.append(contentsOf: bytes)
            wake(&state)
            return true
        }
    }

    /// Ends the stream once everything queued has been sent.
    public func finish() {
        state.withLock { state in
            state.finished = true
            wake(&state)
        }
    }

    /// Ends the stream after `handoffNote`, once everything queued has been sent: the
    /// process has handed off, and the client reconnects to the successor.
    func finishForHandoff() {
        state.withLock { state in
            guard !state.finished else { return }
            state.pending.append(contentsOf: handoffNote)
            state.finished = true
            wake(&state)
        }
    }

    /// Whether the server has let go of the stream (sent to the end, client
    /// gone, or server stopped); writes are refused from then on.
    public var isReleased: Bool { state.withLock { $0.connection.isReleased } }

    /// Runs `body` once the server lets go of the stream (at once if it has).
    public func onRelease(_ body: @escaping @Sendable () -> Void) {
        if !state.withLock({ $0.connection.onRelease(body) }) { body() }
    }

    /// Ends the stream at once, dropping what is queued (server stopping).
    func abort() {
        state.withLock { state in
            state.finished = true
            state.aborted = true
            wake(&state)
        }
    }

    /// Binds the stream to the connection it is answered on (MHD thread).
    func attach(_ connection: OpaquePointer) {
        state.withLock { $0.connection.attach(connection) }
    }

    /// Fills `buffer` for MHD: a byte count, end of stream, or 0 after
    /// suspending the connection until the next write.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        state.withLock { state in
            if state.aborted { return Int(SG_MHD_CONTENT_READER_END_WITH_ERROR) }
            let count = min(buffer.count, state.pendingCount)
            if count > 0 {
                state.pending.withUnsafeBytes { source in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[state.head..<state.head + count]))
                }
                state.head += count
                if state.head == state.pending.count {
                    state.pending.removeAll(keepingCapacity: true)
                    state.head = 0
                } else if state.head > 64 * 1024 {
                    state.pending.removeFirst(state.head)
                    state.head = 0
                }
                return count
            }
            // Suspending is documented as safe from a content reader; the write or
            // finish that resumes takes the same lock, so it cannot come first.
            guard !state.finished, state.connection.suspend() else {
                return Int(SG_MHD_CONTENT_READER_END_OF_STREAM)
            }
            return 0
        }
    }

    /// MHD destroyed the response: no more reads, no more resumes.
    func release() {
        for callback in state.withLock({ $0.connection.release() }) { callback() }
    }

    private func wake(_ state: inout State) {
        state.connection.resume()
    }
}
