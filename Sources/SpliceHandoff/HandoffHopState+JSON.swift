import SpliceControlPlane
import SpliceCore
import SpliceDataPlane

/// A hop as the handoff protocol's `session` message carries it (version 2). A leg's
/// `pending` is a byte count here; the bytes ride in the frame's payload.
extension HandoffHopState {
    var json: JSON {
        var object = JSONObject()
        object["id"] = .string("\(id)")
        object["mediator"] = mediator.map { .string($0.text) } ?? .null
        object["target"] = .string(target)
        object["request"] = request.json
        object["legs"] = .array(legs.map { leg in
            [
                "direction": .string(leg.direction.rawValue),
                "spliced_at": .int(Int64(bitPattern: leg.splicedAt)),
                "fed": .int(Int64(bitPattern: leg.fed)),
                "emitted": .int(Int64(bitPattern: leg.emitted)),
                "pending": .int(Int64(leg.pending.count)),
                "pid": leg.pid.map { .int(Int64($0)) } ?? .null,
            ]
        })
        return .object(object)
    }

    /// Each direction's link offsets, as an object keyed by direction name.
    static func json(offsets: [Direction: [UInt64]]) -> JSON {
        offsets.json { .array($0.map { .int(Int64(bitPattern: $0)) }) }
    }

    /// The `hops` field: each leg's `pending` holds placeholder bytes of the announced
    /// count, to be filled from the payload.
    static func hops(_ value: JSON) throws(HandoffError) -> [HandoffHopState] {
        guard let items = value.array else { throw HandoffError("session: field 'hops' must be an array") }
        var hops: [HandoffHopState] = []
        for item in items {
            guard let idText = item["id"]?.string, let id = HopID(idText) else {
                throw HandoffError("session: a hop's 'id' must be a hop id")
            }
            let mediator = item["mediator"]?.string.map { MediatorName($0) }
            guard let target = item["target"]?.string else { throw HandoffError("session: hop \(id) has no 'target'") }
            let request: HopRequest
            do {
                request = try HopRequest(json: item["request"] ?? .null)
            } catch {
                throw HandoffError("session: hop \(id) request: \(error.detail)")
            }
            guard let legItems = item["legs"]?.array, !legItems.isEmpty else {
                throw HandoffError("session: hop \(id) has no 'legs'")
            }
            var legs: [HandoffHopLegState] = []
            for leg in legItems {
                guard let direction = leg["direction"]?.string.flatMap(Direction.init(rawValue:)),
                      let splicedAt = leg["spliced_at"]?.int, let fed = leg["fed"]?.int, let emitted = leg["emitted"]?.int,
                      let pending = leg["pending"]?.int, pending >= 0, pending <= HandoffFrame.maxPayloadBytes
                else { throw HandoffError("session: hop \(id) has a malformed leg") }
                legs.append(HandoffHopLegState(
                    direction: direction, splicedAt: UInt64(bitPattern: splicedAt), fed: UInt64(bitPattern: fed),
                    emitted: UInt64(bitPattern: emitted), pending: [UInt8](repeating: 0, count: Int(pending)),
                    pid: try pid(leg["pid"], hop: id)))
            }
            hops.append(HandoffHopState(id: id, mediator: mediator, target: target, request: request, legs: legs))
        }
        return hops
    }

    /// A leg's `pid`: null for a TCP mediator, a process id for an exec one.
    private static func pid(_ value: JSON?, hop: HopID) throws(HandoffError) -> Int32? {
        guard let value, !value.isNull else { return nil }
        guard let pid = value.int, pid > 0, pid <= Int64(Int32.max) else {
            throw HandoffError("session: hop \(hop) has a leg whose 'pid' is not a process id")
        }
        return Int32(pid)
    }

    /// The `offsets` field.
    static func offsets(_ value: JSON) throws(HandoffError) -> [Direction: [UInt64]] {
        guard let object = value.object else { throw HandoffError("session: field 'offsets' must be an object") }
        var offsets: [Direction: [UInt64]] = [:]
        for (key, entry) in object {
            guard let direction = Direction(rawValue: key), let items = entry.array,
                  let numbers = Optional(items.compactMap(\.int)), numbers.count == items.count
            else { throw HandoffError("session: field 'offsets' has a malformed '\(key)'") }
            offsets[direction] = numbers.map { UInt64(bitPattern: $0) }
        }
        return offsets
    }
}
