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
    let toServer: ByteCounter
    /// Bytes delivered to the client.
    let toClient: ByteCounter
    /// The session's shape as its loop last published it.
    private let view: Mutex<SessionView>
    /// The loop that owns the session; every action on it runs there.
    let eventLoop: EventLoop
    // Cleared when the session ends, so the record does not keep it alive.
    private let session: NIOLoopBoundBox<Session?>

    /// A record; a session taken over from another process keeps its opening time and goes
    /// on counting from the bytes it had delivered.
    init(id: SessionID, listener: ListenerID, client: String, server: String, eventLoop: EventLoop,
         openedAt: Date = Date(), delivered: ByteCounts = ByteCounts(clientToServer: 0, serverToClient: 0)) {
        self.id = id
        self.listener = listener
        self.client = client
        self.openedAt = openedAt
        self.toServer = ByteCounter(delivered.clientToServer)
        self.toClient = ByteCounter(delivered.serverToClient)
        self.eventLoop = eventLoop
        self.session = NIOLoopBoundBox.makeEmptyBox(valueType: Session.self, eventLoop: eventLoop)
        self.view = Mutex(SessionView(server: server, state: .connecting))
    }

    /// Replaces the published shape; called on the loop after every change.
    func publish(_ shape: SessionView) {
        view.withLock { $0 = shape }
    }

    /// The server as last published (at first, the listener's configured upstream).
    var server: String { view.withLock { $0.server } }

    /// Bytes delivered per direction.
    var bytes: ByteCounts {
        ByteCounts(clientToServer: toServer.value, serverToClient: toClient.value)
    }

    /// A consistent view for the API: the last published shape, with live counters.
    var snapshot: SessionSnapshot {
        let shape = view.withLock { $0 }
        return SessionSnapshot(id: id, listener: listener, client: client, server: shape.server, state: shape.state,
                               openedAt: openedAt, bytes: bytes,
                               hops: shape.hops.enumerated().map { $1.snapshot(position: $0) },
                               splits: shape.splits.map(\.snapshot),
                               captures: shape.captures.isEmpty ? [] : shape.captures.filter(\.isActive).map(\.snapshot))
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
