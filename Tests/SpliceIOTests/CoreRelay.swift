import Foundation
import NIOCore
import SpliceIO
import SpliceTestSupport
import Synchronization

/// A listener on the core whose every client is relayed to `upstream` by a `PairRelay`.
final class CoreRelay: @unchecked Sendable {
    // @unchecked: `relays` is guarded by its Mutex; the relays themselves live on their loops.
    let group: RelayLoopGroup
    let listener: RelayListener
    let relays = RelayList()

    init(upstream: Int, loops: Int = 2) throws {
        group = RelayLoopGroup(loopCount: loops)
        let relays = self.relays
        listener = try RelayListener.bind(host: "127.0.0.1", port: 0, group: group) { client, _ in
            let loop = client.loop
            RelayDialer.connect(host: "127.0.0.1", port: upstream, timeout: .seconds(5), on: loop)
                .assumeIsolated().whenComplete { result in
                    switch result {
                    case .success(let server):
                        let relay = PairRelay(client, server)
                        relays.list.withLock { $0.append(NIOLoopBound(relay, eventLoop: loop)) }
                    case .failure:
                        client.close()
                    }
                }
        }
    }

    var port: Int { listener.localAddress.port ?? 0 }

    /// The largest number of bytes any relay socket holds right now.
    func maxPending() throws -> Int {
        let bound = relays.list.withLock { $0 }
        return try bound.map { relay in
            try relay.eventLoop.submit { max(relay.value.a.socket.pendingBytes, relay.value.b.socket.pendingBytes) }.wait()
        }.max() ?? 0
    }

    func stop() {
        _ = try? listener.close().wait()
        let bound = relays.list.withLock { $0 }
        for relay in bound { try? relay.eventLoop.submit { relay.value.close() }.wait() }
        try? group.syncShutdownGracefully()
    }
}

/// Sends `total` bytes of `ByteStream(seed:)` in `chunk`-sized writes, then half-closes;
/// returns the count and SHA-256 of what was sent.
func sendStream(_ client: TestSocket, seed: UInt64, total: Int, chunk: Int) throws -> (count: Int, digest: String) {
    var stream = ByteStream(seed: seed)
    var digest = Digest()
    var sent = 0
    while sent < total {
        let bytes = stream.next(min(chunk, total - sent))
        digest.update(bytes)
        try client.send(bytes)
        sent += bytes.count
    }
    client.shutdownWrite()
    return (sent, digest.hex())
}

/// The relays a `CoreRelay` made, one per client.
final class RelayList: Sendable {
    let list = Mutex<[NIOLoopBound<PairRelay>]>([])
}

