internal import CSpliceLinux
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// One connection of a session as the relay core sees it: a TCP socket, or an exec
/// mediator's two pipes. Loop-confined: every method runs on `loop`.
///
/// Input is read only when the delegate's `mayRead` allows, straight into the loop's
/// scratch buffer. Output is written at once; what the kernel does not take waits in
/// `pending` until the socket is writable again, and past `highWater` queued bytes the
/// socket reports itself unwritable until it drains to `lowWater`. An idle socket holds no
/// buffer.
public final class RelaySocket: RelayPollable {
    /// The loop that owns the socket.
    public let loop: RelayLoop
    /// What the socket reports to.
    public var delegate: (any RelaySocketDelegate)?
    let inputFD: Int32
    private(set) var outputFD: Int32
    private let isPipe: Bool
    private var inputToken: PollToken?
    private var outputToken: PollToken?
    private(set) public var isOpen = true
    /// The kernel reported input (or EOF) that has not been read yet.
    private var readable = false
    /// The kernel reported the peer's FIN: a short read then does not mean nothing is
    /// left, since no new edge comes for an EOF already queued behind the bytes.
    private var eofQueued = false
    /// The kernel reported a reset (EPOLLERR on a socket whose input has not ended): the
    /// bytes before it are still to be read, then the error.
    private var resetQueued = false
    /// Set while the loop has this socket on its list of reads to do.
    var readScheduled = false
    /// The peer's EOF has been read and reported.
    public private(set) var inputEnded = false
    /// Our output is shut (TCP `SHUT_WR`, or the pipe to the process closed).
    public private(set) var outputShut = false
    /// Output the kernel has not taken yet, oldest first from `pendingHead`. A plain array:
    /// empty it allocates nothing (a `CircularBuffer` would, for every idle socket).
    private var pending: [ByteBuffer] = []
    private var pendingHead = 0
    /// Bytes written by the session and not yet taken by the kernel.
    public private(set) var pendingBytes = 0
    private let highWater: Int
    private let lowWater: Int
    private var unwritable = false
    private var writeFailed = false
    /// A read or write failed: the connection is gone (see `reset`).
    private var failedAlready = false
    private var shutdownRequested = false
    private var shutdownCallbacks: [(Result<Void, RelayIOError>) -> Void] = []
    private var closeAfterFlushRequested = false
    private var closePromise: EventLoopPromise<Void>?
    /// Set while a dial is under way (see `RelayDialer`).
    var connecting: ((Result<Void, RelayIOError>) -> Void)?

    /// NIO's default write-buffer water marks, which the relay kept until now.
    public static let defaultWaterMarks = (low: 32 * 1024, high: 64 * 1024)

    /// Takes an open, non-blocking TCP socket and registers it with `loop`. Nil (and the
    /// descriptor closed) if the loop cannot take it. Public for a socket received from a
    /// predecessor process (a handoff); call it on `loop`.
    public init?(tcp fd: Int32, loop: RelayLoop, waterMarks: (low: Int, high: Int) = RelaySocket.defaultWaterMarks) {
        self.loop = loop
        inputFD = fd
        outputFD = fd
        isPipe = false
        lowWater = waterMarks.low
        highWater = waterMarks.high
        let events = splice_epoll_in | splice_epoll_out | splice_epoll_rdhup | splice_epoll_et
        guard let token = loop.register(fd, events: events, target: self) else {
            Glibc.close(fd)
            return nil
        }
        inputToken = token
    }

    /// Takes a process's stdout (`input`, which we read) and stdin (`output`, which we
    /// write) and registers both with `loop`.
    public init?(pipesReading input: Int32, writing output: Int32, loop: RelayLoop) {
        loop.preconditionInEventLoop()
        self.loop = loop
        inputFD = input
        outputFD = output
        isPipe = true
        lowWater = Self.defaultWaterMarks.low
        highWater = Self.defaultWaterMarks.high
        _ = splice_set_nonblocking(input)
        _ = splice_set_nonblocking(output)
        guard let inToken = loop.register(input, events: splice_epoll_in | splice_epoll_rdhup | splice_epoll_et,
                                          target: self, slot: 0) else {
            Glibc.close(input)
            Glibc.close(output)
            return nil
        }
        guard let outToken = loop.register(output, events: splice_epoll_out | splice_epoll_et, target: self, slot: 1) else {
            loop.deregister(inToken)
            Glibc.close(input)
            Glibc.close(output)
            return nil
        }
        inputToken = inToken
        outputToken = outToken
    }

    // MARK: events

    /// An epoll event for the input (slot 0) or, for pipes, the output (slot 1).
    func ready(_ events: UInt32, slot: Int) {
        guard isOpen else { return }
        if let connecting {
            guard events & (splice_epoll_out | splice_epoll_err | splice_epoll_hup) != 0 else { return }
            self.connecting = nil
            // A failed connect always reports EPOLLERR; writable alone means connected, and
            // SO_ERROR need not be asked (one syscall less per dial).
            if events & (splice_epoll_err | splice_epoll_hup) != 0 {
                let error = splice_socket_error(inputFD)
                if error != 0 {
                    connecting(.failure(.system("connect", error)))
                    return
                }
            }
            connecting(.success(()))
            guard isOpen else { return }
        }
        if events & splice_epoll_err != 0 {
            if isPipe {
                // The process closed its stdin. That fails a write still queued (the flush
                // below gets EPIPE); until we write again, its stdout may still have bytes.
                if slot == 1, pendingBytes > 0 { flushPending() }
                if slot == 1 { return }
            } else if !inputEnded {
                // A reset: bytes that arrived before it are still in the kernel, and `read`
                // returns them first, then the error. Asking SO_ERROR now would clear the error
                // and drop the bytes (a server's last answer before an RST).
                readable = true
                eofQueued = true
                resetQueued = true
                return readAvailable()
            } else {
                let error = splice_socket_error(inputFD)
                if error != 0 { return fail(.system("write", error)) }
            }
        }
        if events & splice_epoll_out != 0, slot == 1 || !isPipe, pendingBytes > 0 {
            flushPending()
            guard isOpen else { return }
        }
        if slot == 0, events & (splice_epoll_in | splice_epoll_rdhup | splice_epoll_hup | splice_epoll_err) != 0 {
            readable = true
            if events & (splice_epoll_rdhup | splice_epoll_hup) != 0 { eofQueued = true }
            readAvailable()
        }
    }

    /// Reads while the delegate takes input, at most `readsPerTurn` times before other
    /// sockets get their turn.
    func readAvailable() {
        var budget = RelayLoop.readsPerTurn
        while readable, isOpen, !inputEnded, let delegate, delegate.mayRead {
            guard budget > 0 else { return loop.scheduleRead(self) }
            budget -= 1
            let n = Glibc.read(inputFD, loop.scratch, RelayLoop.scratchSize)
            if n > 0 {
                if n < RelayLoop.scratchSize, !eofQueued { readable = false }
                delegate.received(UnsafeRawBufferPointer(start: loop.scratch, count: n))
            } else if n == 0 {
                readable = false
                inputEnded = true
                delegate.inputClosed()
            } else {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK {
                    readable = false
                } else if error != EINTR {
                    return fail(.system("read", error))
                }
            }
        }
        // A reset behind input the delegate holds back: unless the hold ends by itself (the
        // delegate says), the peer holding it may never read, and the connection would stay
        // open until it does. The unread bytes go with the connection, as a reset means.
        if resetQueued, readable, isOpen, !inputEnded, let delegate, !delegate.mayRead,
           delegate.dropsInputOnReset {
            let error = splice_socket_error(inputFD)
            fail(.system("read", error != 0 ? error : ECONNRESET))
        }
    }

    /// Reads again if input was left waiting while the delegate did not take it.
    public func resumeRead() {
        guard readable, isOpen, !inputEnded else { return }
        loop.scheduleRead(self)
    }

    // MARK: writing

    /// Whether the socket takes more output without growing past its high-water mark.
    public var isWritable: Bool { isOpen && !unwritable }

    /// Writes `bytes` now, keeping what the kernel does not take. Dropped once the
    /// output is shut or the socket closed.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        guard isOpen, !outputShut, !shutdownRequested, !writeFailed, bytes.count > 0 else { return }
        var sent = 0
        if pendingBytes == 0 {
            let n = rawWrite(bytes.baseAddress!, bytes.count)
            if n == bytes.count { return }
            if n < 0 {
                let error = errno
                guard error == EAGAIN || error == EWOULDBLOCK || error == EINTR else {
                    // Inside someone else's callback: report the failure after it.
                    writeFailed = true
                    loop.later { self.fail(.system("write", error)) }
                    return
                }
            } else {
                sent = n
            }
        }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[sent...])
        var buffer = ByteBufferAllocator().buffer(capacity: rest.count)
        buffer.writeBytes(rest)
        pending.append(buffer)
        pendingBytes += rest.count
        if pendingBytes > highWater { unwritable = true }
    }

    /// Writes a buffer's readable bytes (see `write(_:)`).
    public func write(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { write($0) }
    }

    private func rawWrite(_ pointer: UnsafeRawPointer, _ count: Int) -> Int {
        isPipe ? Glibc.write(outputFD, pointer, count) : send(outputFD, pointer, count, Int32(MSG_NOSIGNAL))
    }

    private func flushPending() {
        while pendingHead < pending.count {
            let first = pending[pendingHead]
            let n = first.withUnsafeReadableBytes { rawWrite($0.baseAddress!, $0.count) }
            if n < 0 {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK { break }
                if error == EINTR { continue }
                return fail(.system("write", error))
            }
            pendingBytes -= n
            if n == first.readableBytes {
                pendingHead += 1
            } else {
                pending[pendingHead].moveReaderIndex(forwardBy: n)
                break
            }
        }
        if pendingHead == pending.count {
            // Written out: the buffers (and the array's storage) go back to the allocator.
            pending = []
            pendingHead = 0
        } else if pendingHead > 0 {
            // Let go of what was written while more waits: a peer that stays just slower than
            // its sender never empties the queue, and would otherwise keep every buffer.
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        if unwritable, pendingBytes <= lowWater {
            unwritable = false
            delegate?.becameWritable()
            guard isOpen else { return }
        }
        guard pendingBytes == 0 else { return }
        if shutdownRequested && !outputShut { shutOutput() }
        if closeAfterFlushRequested { close() }
    }

    // MARK: closing

    /// Half-closes the output once everything written before has gone out; `done` runs
    /// after (on the loop, never inside this call).
    public func closeOutputAfterFlush(_ done: @escaping (Result<Void, RelayIOError>) -> Void) {
        guard isOpen else { return loop.later { done(.failure(.closed)) } }
        if outputShut { return loop.later { done(.success(())) } }
        shutdownCallbacks.append(done)
        shutdownRequested = true
        if pendingBytes == 0 { shutOutput() }
    }

    private func shutOutput() {
        outputShut = true
        var result: Result<Void, RelayIOError> = .success(())
        if isPipe {
            if let outputToken { loop.deregister(outputToken) }
            outputToken = nil
            Glibc.close(outputFD)
            outputFD = -1
        } else if Glibc.shutdown(outputFD, Int32(SHUT_WR)) != 0, errno != ENOTCONN {
            result = .failure(.system("shutdown", errno))
        }
        let callbacks = shutdownCallbacks
        shutdownCallbacks = []
        loop.later { callbacks.forEach { $0(result) } }
    }

    /// Closes once everything written has gone out.
    public func closeAfterFlush() {
        guard isOpen else { return }
        if pendingBytes == 0 { return close() }
        closeAfterFlushRequested = true
    }

    /// Closes with a reset: the peer gets an RST, not a FIN, so a stream cut short by a failure
    /// elsewhere (the other side reset, a mediator died) does not look complete to it.
    public func reset() {
        guard isOpen else { return }
        // A connection that failed is dead already (reset, timed out): nothing to send.
        if !isPipe, !failedAlready {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(inputFD, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        close()
    }

    /// Closes now; what was still queued is dropped.
    public func close() {
        guard isOpen else { return }
        if let inputToken { loop.deregister(inputToken) }
        if let outputToken { loop.deregister(outputToken) }
        inputToken = nil
        outputToken = nil
        releaseDescriptors()
        let callbacks = shutdownCallbacks
        shutdownCallbacks = []
        let connecting = self.connecting
        self.connecting = nil
        loop.later {
            connecting?(.failure(.closed))
            callbacks.forEach { $0(.failure(.closed)) }
            self.delegate?.closed()
            self.delegate = nil
            self.closePromise?.succeed(())
            self.closePromise = nil
        }
    }

    /// Marks the socket closed, closes its descriptors and drops what was queued.
    private func releaseDescriptors() {
        isOpen = false
        Glibc.close(inputFD)
        if isPipe, outputFD >= 0 { Glibc.close(outputFD) }
        outputFD = -1
        pending = []
        pendingHead = 0
        pendingBytes = 0
    }

    // MARK: handoff (issue 15)

    /// The descriptor of a TCP socket (nil for pipes or once closed), to pass to a successor
    /// process. The socket keeps it.
    public var handoffDescriptor: Int32? { isPipe || !isOpen ? nil : inputFD }

    /// The descriptors to pass to a successor process: a TCP socket's one, or a process's
    /// stdout and stdin pipes (nil once closed). The socket keeps them.
    public var handoffDescriptors: [Int32]? {
        guard isOpen else { return nil }
        return isPipe ? [inputFD, outputFD] : [inputFD]
    }

    /// Stops polling the socket and returns the output the kernel has not taken yet, leaving
    /// the descriptors, the queue and the state as they are: while a handoff is under way no
    /// event may move a byte. Nil for a socket closed or still connecting, or one whose
    /// output is shut or shutting (those do not move yet).
    public func suspendForHandoff() -> [UInt8]? {
        guard canSuspendForHandoff, let inputToken else { return nil }
        loop.deregister(inputToken, fd: inputFD)
        self.inputToken = nil
        if isPipe, let outputToken {
            loop.deregister(outputToken, fd: outputFD)
            self.outputToken = nil
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(pendingBytes)
        for buffer in pending[pendingHead...] {
            buffer.withUnsafeReadableBytes { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    /// Whether `suspendForHandoff` would take the socket now: open, connected, polled, and
    /// neither closing, failing nor half-closing (those settle by themselves first).
    public var canSuspendForHandoff: Bool {
        isOpen && connecting == nil && !isHalfClosing && !(isPipe && outputShut) && !closeAfterFlushRequested
            && !writeFailed && inputToken != nil && (!isPipe || outputToken != nil)
    }

    /// A half-close of the output asked for and not done yet (output still queued).
    public var isHalfClosing: Bool { shutdownRequested && !outputShut }

    /// Takes over a TCP socket's half-closed state from a predecessor process: its peer had
    /// sent EOF (`inputEnded`: nothing more is read), or its output was shut (`outputShut`:
    /// nothing more is written; the kernel's socket is shut already). Call before it is
    /// polled for the first time.
    public func adoptHalfClose(inputEnded: Bool, outputShut: Bool) {
        guard !isPipe else { return }
        if inputEnded { self.inputEnded = true }
        if outputShut {
            self.outputShut = true
            shutdownRequested = true
        }
    }

    /// Polls a suspended socket again (the handoff failed): registering it reports what is
    /// ready now, so queued output is flushed and waiting input read. False (and the socket
    /// closed) if the loop cannot take it back.
    @discardableResult
    public func resumeAfterHandoff() -> Bool {
        guard isOpen, inputToken == nil else { return isOpen }
        let events = isPipe ? splice_epoll_in | splice_epoll_rdhup | splice_epoll_et
            : splice_epoll_in | splice_epoll_out | splice_epoll_rdhup | splice_epoll_et
        guard let token = loop.register(inputFD, events: events, target: self) else {
            fail(.system("epoll_ctl", errno))
            return false
        }
        inputToken = token
        if isPipe {
            guard let outToken = loop.register(outputFD, events: splice_epoll_out | splice_epoll_et, target: self,
                                               slot: 1) else {
                fail(.system("epoll_ctl", errno))
                return false
            }
            outputToken = outToken
        }
        return true
    }

    /// Lets go of a suspended socket whose connection now belongs to another process: the
    /// descriptor is closed without a shutdown or a reset (the connection lives on in the
    /// successor), queued output dropped (the successor has its copy), nobody told.
    public func relinquish() {
        guard isOpen else { return }
        if let inputToken { loop.deregister(inputToken, fd: inputFD) }
        inputToken = nil
        if let outputToken { loop.deregister(outputToken, fd: outputFD) }
        outputToken = nil
        releaseDescriptors()
        connecting = nil
        shutdownCallbacks = []
        delegate = nil
    }

    /// How many buffers the socket holds, written out or not (for tests).
    var pendingBufferCount: Int { pending.count }

    /// The loop stopped with this socket open: close the descriptors, tell no one.
    func loopStopped() {
        guard isOpen else { return }
        releaseDescriptors()
        connecting = nil
        shutdownCallbacks = []
        delegate = nil
    }

    private func fail(_ error: RelayIOError) {
        guard isOpen else { return }
        failedAlready = true
        delegate?.failed(error)
        close()
    }

    /// Completes once the socket is closed.
    public var closeFuture: EventLoopFuture<Void> {
        guard isOpen || closePromise != nil else { return loop.makeSucceededVoidFuture() }
        if closePromise == nil { closePromise = loop.makePromise() }
        return closePromise!.futureResult
    }

    // MARK: addresses

    /// The peer's address (nil for pipes, or once the connection is gone).
    public var remoteAddress: SocketAddress? { isPipe || !isOpen ? nil : Self.address(of: inputFD, peer: true) }

    /// The local address (nil for pipes).
    public var localAddress: SocketAddress? { isPipe || !isOpen ? nil : Self.address(of: inputFD, peer: false) }

    /// The peer's address as operators write it (`127.0.0.1:5000`, `[::1]:80`), formatted
    /// straight from the kernel's bytes: this runs for every accepted and dialed socket, and
    /// going through `SocketAddress` and `inet_ntop` (sprintf) cost several percent of a
    /// connection's CPU.
    public var remoteAddressText: String? {
        guard !isPipe, isOpen else { return nil }
        return Self.storage(of: inputFD, peer: true).flatMap(Self.text(of:))
    }

    /// `host:port` of an IPv4 or IPv6 address (see `remoteAddressText`).
    static func text(of storage: sockaddr_storage) -> String? {
        var storage = storage
        if Int32(storage.ss_family) == AF_INET {
            let address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            // At most 21 bytes (`255.255.255.255:65535`), written on the stack.
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { text in
                var count = 0
                withUnsafeBytes(of: address.sin_addr.s_addr) { octets in
                    for (i, octet) in octets.enumerated() {
                        if i > 0 { text[count] = UInt8(ascii: "."); count += 1 }
                        Self.appendDecimal(Int(octet), to: text, at: &count)
                    }
                }
                text[count] = UInt8(ascii: ":")
                count += 1
                Self.appendDecimal(Int(UInt16(bigEndian: address.sin_port)), to: text, at: &count)
                return String(decoding: UnsafeBufferPointer(rebasing: text[..<count]), as: UTF8.self)
            }
        }
        guard let address = SocketAddress(storage), let ip = address.ipAddress, let port = address.port else { return nil }
        return "[\(ip)]:\(port)"
    }

    private static func appendDecimal(_ value: Int, to text: UnsafeMutableBufferPointer<UInt8>, at count: inout Int) {
        if value >= 10 { appendDecimal(value / 10, to: text, at: &count) }
        text[count] = UInt8(ascii: "0") + UInt8(value % 10)
        count += 1
    }

    static func address(of fd: Int32, peer: Bool) -> SocketAddress? {
        storage(of: fd, peer: peer).flatMap(SocketAddress.init)
    }

    /// The kernel's sockaddr for the peer (`getpeername`) or the socket itself (`getsockname`).
    private static func storage(of fd: Int32, peer: Bool) -> sockaddr_storage? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)
            }
        }
        return rc == 0 ? storage : nil
    }
}

extension SocketAddress {
    private static func text(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// An IPv4 or IPv6 address read back from the kernel.
    init?(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee } }
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            var raw = address.sin_addr
            guard inet_ntop(AF_INET, &raw, &text, socklen_t(text.count)) != nil else { return nil }
            self = SocketAddress(address, host: Self.text(text))
        case AF_INET6:
            let address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee } }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            var raw = address.sin6_addr
            guard inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count)) != nil else { return nil }
            self = SocketAddress(address, host: Self.text(text))
        default:
            return nil
        }
    }
}

@available(*, unavailable)
extension RelaySocket: Sendable {}
