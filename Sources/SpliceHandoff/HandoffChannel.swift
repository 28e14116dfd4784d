internal import CSpliceLinux
import SpliceControlPlane
import SpliceCore
import SpliceDataPlane
#if canImport(Glibc)
import Glibc
#endif

/// What went wrong on the handoff connection, as text for the log.
public struct HandoffError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    static func system(_ call: String, _ code: Int32 = errno) -> HandoffError {
        HandoffError("\(call): \(String(cString: strerror(code)))")
    }
}

/// One frame of the handoff protocol: a JSON object (`type`, `fds` and the message's
/// fields), raw payload bytes, and the descriptors that travel with it.
///
/// On the wire: the header's length and the payload's length (4 bytes each, big-endian),
/// the header's JSON, the payload. The descriptors ride on the frame's first byte
/// (`SCM_RIGHTS`); the header says how many (`fds`), so the receiver takes exactly those.
public struct HandoffFrame: Sendable {
    /// The largest header accepted (a listener spec with its templates fits many times).
    public static let maxHeaderBytes = 1 << 20
    /// The largest payload accepted (a session's queued output both ways); a session holding
    /// more refuses the handoff before it freezes (`Session.handoffBlocker`).
    public static let maxPayloadBytes = Gateway.handoffMaxSessionBytes

    public var header: JSONObject
    public var payload: [UInt8]
    public var fds: [Int32]

    /// A frame of `type` with `fields`; `fds` is filled in from the descriptors.
    public init(type: String, _ fields: KeyValuePairs<String, JSON> = [:], payload: [UInt8] = [], fds: [Int32] = []) {
        var header = JSONObject()
        header["type"] = .string(type)
        header["fds"] = .int(Int64(fds.count))
        for (key, value) in fields { header[key] = value }
        self.header = header
        self.payload = payload
        self.fds = fds
    }

    init(header: JSONObject, payload: [UInt8], fds: [Int32]) {
        self.header = header
        self.payload = payload
        self.fds = fds
    }

    /// The message type (`hello`, `session`, …); empty if missing.
    public var type: String { header["type"]?.string ?? "" }

    /// The bytes to send (the descriptors go beside them); throws for a frame past the
    /// limits, which the other side would refuse (and whose lengths may not fit 4 bytes).
    public func encoded() throws(HandoffError) -> [UInt8] {
        let json = JSON.object(header).serializedBytes()
        guard json.count <= Self.maxHeaderBytes, payload.count <= Self.maxPayloadBytes else {
            throw HandoffError("a \(type) frame of \(json.count) header and \(payload.count) payload bytes is past the limits (\(Self.maxHeaderBytes) and \(Self.maxPayloadBytes))")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + json.count + payload.count)
        Self.appendLength(json.count, to: &bytes)
        Self.appendLength(payload.count, to: &bytes)
        bytes += json
        bytes += payload
        return bytes
    }

    /// The header's and payload's lengths from a frame's first 8 bytes; throws past the limits.
    public static func lengths(_ prefix: [UInt8]) throws(HandoffError) -> (header: Int, payload: Int) {
        guard prefix.count == 8 else { throw HandoffError("a frame starts with 8 length bytes") }
        let header = prefix[0..<4].reduce(0) { $0 << 8 | Int($1) }
        let payload = prefix[4..<8].reduce(0) { $0 << 8 | Int($1) }
        guard header > 0, header <= maxHeaderBytes else { throw HandoffError("frame header of \(header) bytes (at most \(maxHeaderBytes))") }
        guard payload <= maxPayloadBytes else { throw HandoffError("frame payload of \(payload) bytes (at most \(maxPayloadBytes))") }
        return (header, payload)
    }

    private static func appendLength(_ count: Int, to bytes: inout [UInt8]) {
        let value = UInt32(count)
        bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }
}

/// A blocking Unix stream connection that carries handoff frames and descriptors. Used by
/// one thread at a time (the handoff's own); owns its descriptor and every descriptor
/// received and not yet taken by a frame.
public final class HandoffChannel {
    /// The connection's descriptor.
    public let fd: Int32
    private var arrived: [Int32] = []
    private var closed = false
    /// When every send and receive gives up, however the other process paces its bytes
    /// (nil: only the receive timeout). Each call's socket timeouts are set to what is left.
    public var deadline: ContinuousClock.Instant?

    /// Takes ownership of a connected Unix stream socket.
    public init(fd: Int32) {
        self.fd = fd
    }

    /// Connects to the handoff socket at `path`; throws unless the process listening there
    /// runs as this process's user.
    public static func connect(to path: String) throws(HandoffError) -> HandoffChannel {
        let fd = splice_unix_connect(path)
        guard fd >= 0 else { throw .system("connect \(path)") }
        let channel = HandoffChannel(fd: fd)
        if let problem = channel.peerProblem() {
            channel.close()
            throw HandoffError("\(path): \(problem)")
        }
        return channel
    }

    /// Why the process at the other end may not take part (it runs as another user), or nil.
    public func peerProblem() -> String? {
        let uid = splice_peer_uid(fd)
        guard uid >= 0 else { return "cannot read the other process's credentials: \(String(cString: strerror(errno)))" }
        guard uid == Int64(geteuid()) else {
            return "the other process runs as uid \(uid), this one as uid \(geteuid()); a handoff stays with one user"
        }
        return nil
    }

    /// Waits up to `milliseconds` for something to receive, or for the other end to close:
    /// false if the time passed with the connection open and quiet.
    public func awaitInput(milliseconds: Int) -> Bool {
        guard !closed else { return true }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&entry, 1, Int32(clamping: milliseconds))
            if ready < 0, errno == EINTR { continue }
            // An error is for the receive that follows to report.
            return ready != 0
        }
    }

    /// Whether the other end has closed the connection or shut down its sending side (a
    /// process that died, or gave up), without waiting.
    public var peerHungUp: Bool {
        guard !closed else { return true }
        return splice_peer_hung_up(fd) != 0
    }

    /// The process id of the other end (as of its connect), or nil if it cannot be read.
    public var peerPID: Int32? {
        guard !closed else { return nil }
        let pid = splice_peer_pid(fd)
        return pid > 0 ? pid : nil
    }

    /// Makes a blocked receive give up after `milliseconds` (0: wait for ever).
    public func setReceiveTimeout(milliseconds: Int) {
        _ = splice_set_receive_timeout(fd, Int32(clamping: milliseconds))
    }

    /// Sends a frame, its descriptors on the first byte.
    public func send(_ frame: HandoffFrame) throws(HandoffError) {
        // The number may be someone else's once closed.
        guard !closed else { throw HandoffError("the handoff connection is closed") }
        guard frame.fds.count <= 16 else { throw HandoffError("at most 16 descriptors per frame") }
        let bytes = try frame.encoded()
        var offset = 0
        var fds = frame.fds
        while offset < bytes.count {
            try applyDeadline()
            let sent = bytes.withUnsafeBytes { raw in
                fds.withUnsafeMutableBufferPointer { descriptors in
                    splice_send_fds(fd, raw.baseAddress! + offset, raw.count - offset, descriptors.baseAddress,
                                    Int32(descriptors.count))
                }
            }
            if sent < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw HandoffError("the other process took no bytes in time") }
                throw .system("send")
            }
            fds = []
            offset += sent
        }
    }

    /// Receives the next frame with the descriptors it announced; throws on EOF, a timeout,
    /// a malformed frame, or descriptors that did not arrive.
    public func receive() throws(HandoffError) -> HandoffFrame {
        guard !closed else { throw HandoffError("the handoff connection is closed") }
        let (headerCount, payloadCount) = try HandoffFrame.lengths(read(8))
        let text = try read(headerCount)
        let json: JSON
        do {
            json = try JSON.parse(text)
        } catch {
            throw HandoffError("frame header is not JSON: \(error.detail)")
        }
        guard let header = json.object else { throw HandoffError("frame header is not a JSON object") }
        let payload = try read(payloadCount)
        let count = Int(header["fds"]?.int ?? 0)
        guard count >= 0, count <= arrived.count else {
            throw HandoffError("frame announced \(count) descriptors, \(arrived.count) arrived")
        }
        let fds = Array(arrived.prefix(count))
        arrived.removeFirst(count)
        return HandoffFrame(header: header, payload: payload, fds: fds)
    }

    /// Receives the next frame as a message. Descriptors it does not take (a frame refused,
    /// or one carrying more than its message uses) are closed here: the caller owns exactly
    /// the message's (`HandoffMessage.descriptors`).
    public func receiveMessage() throws(HandoffError) -> HandoffMessage {
        let frame = try receive()
        do {
            let message = try HandoffMessage(frame)
            let taken = Set(message.descriptors)
            frame.fds.filter { !taken.contains($0) }.forEach { _ = Glibc.close($0) }
            return message
        } catch {
            frame.fds.forEach { _ = Glibc.close($0) }
            throw error
        }
    }

    private func read(_ count: Int) throws(HandoffError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        var fds = [Int32](repeating: -1, count: 16)
        while done < count {
            try applyDeadline()
            var received: Int32 = 0
            let n = bytes.withUnsafeMutableBytes { raw in
                splice_recv_fds(fd, raw.baseAddress! + done, count - done, &fds, &received)
            }
            if n < 0 {
                let error = errno
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK { throw HandoffError("no answer in time") }
                throw .system("recv", error)
            }
            arrived += fds.prefix(Int(received))
            if n == 0 { throw HandoffError("the other process closed the handoff connection") }
            done += n
        }
        return bytes
    }

    /// Sets both socket timeouts to the time left before `deadline`; throws once it passed.
    private func applyDeadline() throws(HandoffError) {
        guard let deadline else { return }
        let left = deadline - .now
        guard left > .zero else { throw HandoffError("the handoff took longer than allowed") }
        let (seconds, attoseconds) = left.components
        let milliseconds = max(1, Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        _ = splice_set_send_timeout(fd, milliseconds)
        _ = splice_set_receive_timeout(fd, milliseconds)
    }

    /// Closes the connection and every descriptor received but not taken.
    public func close() {
        guard !closed else { return }
        closed = true
        arrived.forEach { _ = Glibc.close($0) }
        arrived = []
        _ = Glibc.close(fd)
    }

    deinit { close() }
}

@available(*, unavailable)
extension HandoffChannel: Sendable {}
