import Foundation
import NIOCore
import SpliceCore
import Synchronization

/// The registry's entry for a live session: what the API may read from any thread, and the
/// way onto the session's event loop for anything that acts on it.
final class SessionRecord: Sendable {
    /// Session id.
    let id: SessionID
    /// The accepting listener.
    let listener: ListenerID
    /// The client's address.
    let client: String
    /// When the client was accepted.
    let openedAt: Date
    /// Bytes delivered to the server.
    let toServer = ByteCounter()
    /// Bytes delivered to the client.
    let toClient = ByteCounter()
    /// Spliced hops in stack order, as the session last published them.
    private let hops = Mutex<[HopRecord]>([])
    /// Splits in the order they were added, as the session last published them.
    private let splits = Mutex<[SplitRecord]>([])
    /// Live captures recording the session (an empty array costs no allocation).
    let captures = CaptureList()
    /// The loop that owns the session; every action on it runs there.
    let eventLoop: EventLoop
    // Cleared when the session ends, so the record does not keep it alive.
    private let session: NIOLoopBoundBox<Session?>
    private let mutable: Mutex<(server: String, state: SessionState)>

    init(id: SessionID, listener: ListenerID, client: String, server: String, eventLoop: EventLoop) {
        self.id = id
        self.listener = listener
        self.client = client
        self.openedAt = Date()
        self.eventLoop = eventLoop
        self.session = NIOLoopBoundBox.makeEmptyBox(valueType: Session.self, eventLoop: eventLoop)
        self.mutable = Mutex((server, .connecting))
    }

    /// Records a state change made on the loop.
    func update(state: SessionState) {
        mutable.withLock { $0.state = state }
    }

    /// Records which server the session now talks to.
    func update(server: String) {
        mutable.withLock { $0.server = server }
    }

    /// Publishes the session's hop stack after a change.
    func update(hops stack: [HopRecord]) {
        hops.withLock { $0 = stack }
    }

    /// Publishes the session's splits after a change.
    func update(splits list: [SplitRecord]) {
        splits.withLock { $0 = list }
    }

    /// Bytes delivered per direction.
    var bytes: ByteCounts {
        ByteCounts(clientToServer: toServer.value, serverToClient: toClient.value)
    }

    /// A consistent view for the API.
    var snapshot: SessionSnapshot {
        let (server, state) = mutable.withLock { ($0.server, $0.state) }
        let stack = hops.withLock { $0 }
        let copies = splits.withLock { $0 }
        return SessionSnapshot(id: id, listener: listener, client: client, server: server, state: state,
                               openedAt: openedAt, bytes: bytes,
                               hops: stack.enumerated().map { $1.snapshot(position: $0) },
                               splits: copies.map(\.snapshot), captures: captures.snapshots)
    }

    /// Runs `body` with the session on its event loop; fails with 404 once it has ended.
    func withSession<T: Sendable>(_ body: @escaping @Sendable (Session) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        eventLoop.flatSubmit { [session, id, eventLoop] in
            guard let live = session.value else {
                return eventLoop.makeFailedFuture(APIError.notFound("session \(id) has ended"))
            }
            return body(live)
        }
    }

    /// Binds the record to its session; called on the loop right after both exist.
    func attach(_ live: Session) {
        session.value = live
    }

    /// Lets go of the session; called on its loop as it ends.
    func release() {
        session.value = nil
    }
}
