import Foundation
import NIOPosix
import SpliceSamples
import SpliceTestSupport

/// Sample mediator servers on 127.0.0.1:0 sharing one event loop group, all stopped by
/// `close()`.
final class SampleHarness: @unchecked Sendable {
    // @unchecked: `servers` is only touched under `lock`; the group is thread-safe.
    private let group = makeTestGroup()
    private let lock = NSLock()
    private var servers: [SampleMediatorServer] = []

    /// Starts a server applying `transform`.
    func start(_ transform: SampleTransform) throws -> SampleMediatorServer {
        let server = try SampleMediatorServer.start(transform: transform, host: "127.0.0.1", port: 0, group: group)
        lock.lock()
        servers.append(server)
        lock.unlock()
        return server
    }

    /// Starts a server for `name` (as the command line spells it).
    func start(_ name: String) throws -> SampleMediatorServer {
        try start(SampleTransform(parsing: name))
    }

    /// Stops every server and the event loops. Call it off the concurrency pool's threads
    /// only through `ThreadTask`, since it blocks.
    func close() {
        lock.lock()
        let open = servers
        servers = []
        lock.unlock()
        for server in open { server.close() }
        try? group.syncShutdownGracefully()
    }
}

/// Sends `bytes` over a new connection to `port`, half-closes, and reads until EOF.
func exchange(port: Int, _ bytes: [UInt8]) throws -> [UInt8] {
    let socket = try TestSocket.connect(port: port)
    defer { socket.close() }
    let sender = Background {
        try socket.send(bytes)
        socket.shutdownWrite()
    }
    let received = try socket.receiveAll()
    try sender.join()
    return received
}

/// Blocking work on its own thread, joined from another blocking thread (`ThreadTask` is
/// the way to wait from async code).
final class Background<T: Sendable>: @unchecked Sendable {
    // @unchecked: `result` is written by the thread before `done` is signalled, read after.
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, any Error>?

    /// Starts `body` on a new thread.
    init(_ body: @escaping @Sendable () throws -> T) {
        Thread.detachNewThread {
            self.result = Result { try body() }
            self.done.signal()
        }
    }

    /// Waits for the body; returns its value or rethrows its error.
    func join() throws -> T {
        done.wait()
        done.signal()  // later joins return at once
        return try result!.get()
    }
}

/// Copies one socket's bytes into another until EOF, then half-closes the target; returns
/// how many bytes it copied. This chains two mediators the way the gateway does.
func pipe(from source: TestSocket, to target: TestSocket) -> Background<Int> {
    Background {
        var copied = 0
        while true {
            let chunk = try source.receive()
            if chunk.isEmpty { break }
            try target.send(chunk)
            copied += chunk.count
        }
        target.shutdownWrite()
        return copied
    }
}

/// Printable ASCII with every letter, digit and some punctuation, `count` bytes of it.
func asciiText(_ count: Int, seed: UInt64 = 7) -> [UInt8] {
    let alphabet = Array("The quick brown fox JUMPS over the lazy dog, 0123456789! {}[]@`~\n".utf8)
    var stream = ByteStream(seed: seed)
    return stream.next(count).map { alphabet[Int($0) % alphabet.count] }
}
