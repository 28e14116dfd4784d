import SpliceCore
import Synchronization

/// All live sessions, by id, readable from any thread.
final class SessionRegistry: Sendable {
    private let sessions = Mutex(SessionTable())
    private let nextSession: Atomic<UInt64>
    private let nextHop = Atomic<UInt64>(1)
    private let nextSplit = Atomic<UInt64>(1)

    /// A registry whose first session is numbered `firstSessionNumber` (a cluster node's
    /// sessions start at its own base, so ids are unique in the cluster).
    init(firstSessionNumber: UInt64 = 1) {
        nextSession = Atomic(max(1, firstSessionNumber))
    }

    /// A fresh session id.
    func makeID() -> SessionID {
        SessionID(number: nextSession.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// A fresh split id, unique across sessions.
    func makeSplitID() -> SplitID {
        SplitID(number: nextSplit.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// A fresh hop id, unique across sessions.
    func makeHopID() -> HopID {
        HopID(number: nextHop.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// The next numbers of the three id sources, in the order session, hop, split (a handoff
    /// passes them on so that ids continue in the successor).
    var nextNumbers: (session: UInt64, hop: UInt64, split: UInt64) {
        (nextSession.load(ordering: .relaxed), nextHop.load(ordering: .relaxed), nextSplit.load(ordering: .relaxed))
    }

    /// Issues no id numbered below these any more (a successor continuing a predecessor's ids).
    func skipNumbers(session: UInt64, hop: UInt64, split: UInt64) {
        nextSession.raise(to: session)
        nextHop.raise(to: hop)
        nextSplit.raise(to: split)
    }

    func insert(_ record: SessionRecord) {
        sessions.withLock { table in
            // Ids are issued in order, so this is almost always an append.
            let index = table.ordered.insertionIndex(of: record.id)
            table.ordered.insert(record, at: index)
        }
    }

    func remove(_ id: SessionID) {
        sessions.withLock { table in
            if let index = table.ordered.index(of: id) { table.ordered.remove(at: index) }
        }
    }

    func record(_ id: SessionID) -> SessionRecord? {
        sessions.withLock { table in table.ordered.index(of: id).map { table.ordered[$0] } }
    }

    /// Live sessions of one listener (or all), in id order.
    func records(listener: ListenerID? = nil) -> [SessionRecord] {
        let all = sessions.withLock { $0.ordered }
        guard let listener else { return all }
        return all.filter { $0.listener == listener }
    }

    /// One page of sessions in id order, starting after `cursor`: a binary search and a
    /// slice, so paging through many sessions costs what the pages hold.
    func page(listener: ListenerID?, limit: Int, after cursor: SessionID?) -> (items: [SessionRecord], next: SessionID?) {
        sessions.withLock { table in
            var index = cursor.map { table.ordered.index(after: $0) } ?? 0
            var items: [SessionRecord] = []
            items.reserveCapacity(min(limit, table.ordered.count - index))
            while index < table.ordered.count, items.count < limit {
                let record = table.ordered[index]
                if listener == nil || record.listener == listener { items.append(record) }
                index += 1
            }
            let more = table.ordered[index...].contains { listener == nil || $0.listener == listener }
            return (items, more ? items.last?.id : nil)
        }
    }

    /// How many sessions are live.
    var count: Int { sessions.withLock { $0.ordered.count } }
}

/// Live sessions in id order: paging is a slice, a lookup a binary search. No
/// dictionary beside it: at 10,000 sessions the search is 14 steps, and a
/// dictionary cost ~165 B per idle session (bench/results/profile/idle-heap.txt).
private struct SessionTable {
    var ordered: [SessionRecord] = []
}

extension Array where Element == SessionRecord {
    /// Where a record with `id` sits or would sit in this id-ordered array.
    fileprivate func insertionIndex(of id: SessionID) -> Int {
        if let last, last.id < id { return count }
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle].id < id { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Where the first record with an id above `id` sits (the start of the page after a cursor).
    fileprivate func index(after id: SessionID) -> Int {
        // `number + 1` would trap for the largest id a client may send as a cursor.
        guard id.number < UInt64.max else { return count }
        return insertionIndex(of: SessionID(number: id.number + 1))
    }

    /// Where the record with `id` sits, or nil when it is not here.
    fileprivate func index(of id: SessionID) -> Int? {
        let index = insertionIndex(of: id)
        return index < count && self[index].id == id ? index : nil
    }
}
