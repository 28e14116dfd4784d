import SpliceCore
import Synchronization

/// All live sessions, by id, readable from any thread.
final class SessionRegistry: Sendable {
    private let sessions = Mutex<[Identifier: SessionRecord]>([:])
    private let nextSession = Atomic<UInt64>(1)
    private let nextHop = Atomic<UInt64>(1)
    private let nextSplit = Atomic<UInt64>(1)

    init() {}

    /// A fresh session id.
    func makeID() -> Identifier {
        Identifier(prefix: "s", number: nextSession.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// A fresh split id, unique across sessions.
    func makeSplitID() -> Identifier {
        Identifier(prefix: "x", number: nextSplit.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// A fresh hop id, unique across sessions.
    func makeHopID() -> Identifier {
        Identifier(prefix: "h", number: nextHop.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    func insert(_ record: SessionRecord) {
        sessions.withLock { $0[record.id] = record }
    }

    func remove(_ id: Identifier) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    func record(_ id: Identifier) -> SessionRecord? {
        sessions.withLock { $0[id] }
    }

    /// Live sessions of one listener (or all), in id order.
    func records(listener: Identifier? = nil) -> [SessionRecord] {
        let all = sessions.withLock { Array($0.values) }
        return all.filter { listener == nil || $0.listener == listener }.sorted { $0.id < $1.id }
    }

    /// One page of sessions in id order, starting after `cursor`.
    func page(listener: Identifier?, limit: Int, after cursor: Identifier?) -> (items: [SessionRecord], next: Identifier?) {
        let all = sessions.withLock { Array($0.values) }
        var matching = all.filter { record in
            (listener == nil || record.listener == listener) && (cursor.map { record.id > $0 } ?? true)
        }
        matching.sort { $0.id < $1.id }
        let items = Array(matching.prefix(limit))
        let next = matching.count > limit ? items.last?.id : nil
        return (items, next)
    }

    /// How many sessions are live.
    var count: Int { sessions.withLock { $0.count } }
}
