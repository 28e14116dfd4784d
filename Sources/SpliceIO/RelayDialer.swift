internal import CSpliceLinux
import Dispatch
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// A name lookup racing its deadline; touched only on the dialing loop.
private final class Lookup: @unchecked Sendable {
    // @unchecked: read and written only on the loop that dials.
    var timer: TimerEntry?
    var expired = false
}

/// A dial's completion on its way to the dialing loop from whichever thread asked for the
/// dial (`NIOLoopBound` would insist on being made on the loop already).
private final class LoopCompletion: @unchecked Sendable {
    // @unchecked: made anywhere, but called only on the loop that dials.
    let done: RelayDialer.Completion
    init(_ done: @escaping RelayDialer.Completion) { self.done = done }
}

/// Dials TCP peers (servers, mediators, split recipients) on a loop, as `RelaySocket`s.
public enum RelayDialer {
    /// What a dial reports, once, on the dialing loop: the connected socket, or why not.
    public typealias Completion = (Result<RelaySocket, RelayIOError>) -> Void

    /// Connects to `host:port` within `timeout`. An IP literal is used as it is; a name is
    /// resolved off the loop (getaddrinfo blocks) and its addresses tried in order.
    public static func connect(host: String, port: Int, timeout: TimeAmount, on loop: RelayLoop,
                               waterMarks: (low: Int, high: Int) = RelaySocket.defaultWaterMarks)
        -> EventLoopFuture<RelaySocket> {
        let promise = loop.makePromise(of: RelaySocket.self)
        dial(host: host, port: port, timeout: timeout, on: loop, waterMarks: waterMarks) { result in
            switch result {
            case .success(let socket): promise.assumeIsolated().succeed(socket)
            case .failure(let error): promise.fail(error)
            }
        }
        return promise.futureResult
    }

    /// `connect` without a future: `done` runs on `loop` once the dial is over, never
    /// before this returns; callable from any thread. A session dials its server so, once per client: the promise,
    /// its future and their callbacks were a measurable share of a short session's cost.
    public static func dial(host: String, port: Int, timeout: TimeAmount, on loop: RelayLoop,
                            waterMarks: (low: Int, high: Int) = RelaySocket.defaultWaterMarks,
                            _ done: @escaping Completion) {
        let deadline = NIODeadline.now() + timeout
        if let literal = try? SocketAddress(ipAddress: host, port: port) {
            if loop.inEventLoop {
                loop.later { attempt([literal][...], deadline: deadline, timeout: timeout, loop: loop, waterMarks: waterMarks, done) }
            } else {
                let report = LoopCompletion(done)
                loop.execute {
                    attempt([literal][...], deadline: deadline, timeout: timeout, loop: loop, waterMarks: waterMarks, report.done)
                }
            }
            return
        }
        // The timeout covers the lookup too: a resolver that hangs fails the dial on time
        // (the lookup itself runs on until getaddrinfo returns, and is then ignored).
        let lookup = Lookup()
        let report = LoopCompletion(done)
        loop.execute {
            lookup.timer = loop.timers.add(deadline) {
                lookup.timer = nil
                lookup.expired = true
                report.done(.failure(.timeout(milliseconds: timeout.nanoseconds / 1_000_000)))
            }
        }
        DispatchQueue.global().async {
            let result = Result { () throws(RelayIOError) in try resolve(host, port) }
            loop.execute {
                guard !lookup.expired else { return }
                if let timer = lookup.timer { loop.timers.cancel(timer) }
                lookup.timer = nil
                switch result {
                case .success(let addresses):
                    attempt(addresses[...], deadline: deadline, timeout: timeout, loop: loop, waterMarks: waterMarks,
                            report.done)
                case .failure(let error):
                    report.done(.failure(error))
                }
            }
        }
    }

    private static func resolve(_ host: String, _ port: Int) throws(RelayIOError) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw .resolve(host, String(cString: gai_strerror(rc)).lowercased())
        }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            if let raw = current.pointee.ai_addr {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { target in
                    target.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: Int(current.pointee.ai_addrlen)))
                }
                if let address = SocketAddress(storage) { addresses.append(address) }
            }
            entry = current.pointee.ai_next
        }
        guard !addresses.isEmpty else { throw .resolve(host, "no address") }
        return addresses
    }

    /// Tries the first address; on failure the next, with the first failure reported if
    /// all fail.
    private static func attempt(
        _ addresses: ArraySlice<SocketAddress>, deadline: NIODeadline, timeout: TimeAmount, loop: RelayLoop,
        waterMarks: (low: Int, high: Int), firstError: RelayIOError? = nil, _ done: @escaping Completion
    ) {
        guard let address = addresses.first else {
            return done(.failure(firstError ?? .system("connect", EHOSTUNREACH)))
        }
        let rest = addresses.dropFirst()
        let retry: (RelayIOError) -> Void = { error in
            if rest.isEmpty || NIODeadline.now() >= deadline {
                done(.failure(firstError ?? error))
            } else {
                attempt(rest, deadline: deadline, timeout: timeout, loop: loop, waterMarks: waterMarks,
                        firstError: firstError ?? error, done)
            }
        }
        let fd = splice_stream_socket(Int32(address.protocol.rawValue))
        guard fd >= 0 else { return retry(.system("socket", errno)) }
        _ = splice_set_int_option(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        let rc = address.withSockAddr { pointer, length in Glibc.connect(fd, pointer, socklen_t(length)) }
        if rc != 0, errno != EINPROGRESS {
            let error = errno
            Glibc.close(fd)
            return retry(.system("connect", error))
        }
        guard let socket = RelaySocket(tcp: fd, loop: loop, waterMarks: waterMarks) else {
            return retry(.system("epoll_ctl", errno))
        }
        if rc == 0 { return done(.success(socket)) }
        let timer = loop.timers.add(deadline) {
            socket.connecting = nil
            socket.close()
            retry(.timeout(milliseconds: timeout.nanoseconds / 1_000_000))
        }
        socket.connecting = { result in
            loop.timers.cancel(timer)
            switch result {
            case .success:
                done(.success(socket))
            case .failure(let error):
                socket.close()
                retry(error)
            }
        }
    }
}
