import SpliceControlPlane
import SpliceCore
import SpliceDataPlane

/// A split as the handoff protocol's `session` message carries it (version 2). A leg's
/// `pending` and `backlog` are byte counts here; the bytes ride in the frame's payload.
extension HandoffSplitState {
    var json: JSON {
        var object = JSONObject()
        object["id"] = .string("\(id)")
        object["request"] = request.json
        object["state"] = .string(state.rawValue)
        object["reason"] = reason.map { .string($0) } ?? .null
        object["replica"] = .bool(isReplica)
        object["legs"] = .array(legs.map { leg in
            [
                "direction": .string(leg.direction.rawValue),
                "from_offset": .int(Int64(bitPattern: leg.fromOffset)),
                "sent": .int(Int64(bitPattern: leg.sent)),
                "discarded": .int(Int64(bitPattern: leg.discarded)),
                "unsent_at_drop": .int(Int64(bitPattern: leg.unsentAtDrop)),
                "pending": .int(Int64(leg.pending.count)),
                "backlog": .int(Int64(leg.backlog.count)),
                "backlog_start": .int(Int64(bitPattern: leg.backlogStart)),
            ]
        })
        return .object(object)
    }

    /// The `splits` field: each leg's `pending` and `backlog` hold placeholder bytes of the
    /// announced counts, to be filled from the payload.
    static func splits(_ value: JSON) throws(HandoffError) -> [HandoffSplitState] {
        guard let items = value.array else { throw HandoffError("session: field 'splits' must be an array") }
        var splits: [HandoffSplitState] = []
        for item in items {
            guard let idText = item["id"]?.string, let id = SplitID(idText) else {
                throw HandoffError("session: a split's 'id' must be a split id")
            }
            let request: SplitRequest
            do {
                request = try SplitRequest(json: item["request"] ?? .null)
            } catch {
                throw HandoffError("session: split \(id) request: \(error.detail)")
            }
            guard let state = item["state"]?.string.flatMap(SplitSnapshot.State.init(rawValue:)),
                  let replica = item["replica"]?.bool, let legItems = item["legs"]?.array, !legItems.isEmpty
            else { throw HandoffError("session: split \(id) is malformed") }
            var legs: [HandoffSplitLegState] = []
            for leg in legItems {
                guard let direction = leg["direction"]?.string.flatMap(Direction.init(rawValue:)),
                      let from = leg["from_offset"]?.int, let sent = leg["sent"]?.int,
                      let discarded = leg["discarded"]?.int, let unsent = leg["unsent_at_drop"]?.int,
                      let pending = leg["pending"]?.int, (0...Int64(HandoffFrame.maxPayloadBytes)).contains(pending),
                      let backlog = leg["backlog"]?.int, (0...Int64(HandoffFrame.maxPayloadBytes)).contains(backlog),
                      let backlogStart = leg["backlog_start"]?.int
                else { throw HandoffError("session: split \(id) has a malformed leg") }
                legs.append(HandoffSplitLegState(
                    direction: direction, fromOffset: UInt64(bitPattern: from), sent: UInt64(bitPattern: sent),
                    discarded: UInt64(bitPattern: discarded), unsentAtDrop: UInt64(bitPattern: unsent),
                    pending: [UInt8](repeating: 0, count: Int(pending)),
                    backlog: [UInt8](repeating: 0, count: Int(backlog)), backlogStart: UInt64(bitPattern: backlogStart)))
            }
            splits.append(HandoffSplitState(id: id, request: request, state: state, reason: item["reason"]?.string,
                                            isReplica: replica, legs: legs))
        }
        return splits
    }
}

extension HandoffSessionState {
    /// The payload after the endpoints' queued bytes: each hop leg's, each split leg's,
    /// then each split leg's held replica output.
    var legBytes: [UInt8] {
        hops.flatMap(\.legs).flatMap(\.pending) + splits.flatMap(\.legs).flatMap(\.pending)
            + splits.flatMap(\.legs).flatMap(\.backlog)
    }

    /// Fills the legs' placeholder bytes from `payload`, in `legBytes` order; false if the
    /// counts do not add up to it.
    mutating func fillLegBytes(from payload: ArraySlice<UInt8>) -> Bool {
        var at = payload.startIndex
        func take(_ count: Int) -> [UInt8] {
            defer { at += count }
            return Array(payload[at..<(at + count)])
        }
        let hopCounts = hops.flatMap(\.legs).map(\.pending.count)
        let splitCounts = splits.flatMap(\.legs).map { $0.pending.count + $0.backlog.count }
        guard hopCounts.reduce(0, +) + splitCounts.reduce(0, +) == payload.count else { return false }
        for hop in hops.indices {
            for leg in hops[hop].legs.indices { hops[hop].legs[leg].pending = take(hops[hop].legs[leg].pending.count) }
        }
        for split in splits.indices {
            for leg in splits[split].legs.indices {
                splits[split].legs[leg].pending = take(splits[split].legs[leg].pending.count)
            }
        }
        for split in splits.indices {
            for leg in splits[split].legs.indices {
                splits[split].legs[leg].backlog = take(splits[split].legs[leg].backlog.count)
            }
        }
        return true
    }
}
