import Foundation

/// A server that keeps every byte it receives (and optionally echoes it), for tests that
/// compare the exact stream that reached the far end.
public final class Recorder: @unchecked Sendable {
    // @unchecked: `bytes` and `eofs` are only touched under `lock`.
    private let lock = NSLock()
    private var received: [UInt8] = []
    private var eofCount = 0
    public private(set) var server: TestServer!

    /// Starts recording; with `echo` every byte is also sent back.
    public init(echo: Bool = false) throws {
        // The connection threads hold the recorder strongly: one may still be finishing
        // after the test has let go of it.
        let box = RecorderBox()
        server = try TestServer { socket in
            guard let recorder = box.recorder else { return socket.close() }
            while let chunk = try? socket.receive(), !chunk.isEmpty {
                recorder.append(chunk)
                if echo, (try? socket.send(chunk)) == nil { break }
            }
            recorder.lock.lock()
            recorder.eofCount += 1
            recorder.lock.unlock()
            socket.shutdownWrite()
            _ = try? socket.receiveAll()
            socket.close()
        }
        box.recorder = self
    }

    private func append(_ chunk: [UInt8]) {
        lock.lock()
        received += chunk
        lock.unlock()
    }

    /// The port it listens on.
    public var port: Int { server.port }

    /// Everything received so far.
    public var bytes: [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// How many received so far.
    public var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return received.count
    }

    /// How many connections ended with EOF.
    public var eofs: Int {
        lock.lock()
        defer { lock.unlock() }
        return eofCount
    }

    public func stop() { server.stop() }
}

/// Hands the recorder to its connection threads once it is fully initialized.
private final class RecorderBox: @unchecked Sendable {
    // @unchecked: set once, before any connection can be accepted by a test.
    var recorder: Recorder?
}
