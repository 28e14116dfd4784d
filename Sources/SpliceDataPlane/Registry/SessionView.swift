import SpliceCore

/// The shape of a session as the API sees it: published whole by the session's loop after
/// each change (`Session.publish`), read under one lock by any thread. Byte counters are
/// not part of the shape: the view holds the counters themselves, read live.
struct SessionView: Sendable {
    /// The server the session talks to now.
    var server: String
    var state: SessionState
    /// Spliced hops in stack order, client side first.
    var hops: [HopView] = []
    /// Splits in the order they were added (dropped and closed ones stay listed).
    var splits: [SplitView] = []
    /// Captures recording the session; their figures are read live, and one whose reader
    /// left is not shown.
    var captures: [CaptureSink] = []
}

/// One hop as published.
struct HopView: Sendable {
    let id: HopID
    let mediator: MediatorName?
    let target: String
    let request: HopRequest
    let state: HopSnapshot.State
    let legs: [Direction: HopLegCounters]

    /// The API's view at stack `position`.
    func snapshot(position: Int) -> HopSnapshot {
        HopSnapshot(
            id: id, mediator: mediator, target: target, directions: request.directions, position: position,
            state: state, onFailure: request.onFailure, drainTimeoutMs: request.drainTimeoutMs,
            legs: legs.mapValues(\.snapshot))
    }
}

/// One split as published.
struct SplitView: Sendable {
    let id: SplitID
    let request: SplitRequest
    let state: SplitSnapshot.State
    /// Why it was dropped, if it was.
    let reason: String?
    let legs: [Direction: SplitLegCounters]

    /// The API's view.
    var snapshot: SplitSnapshot {
        SplitSnapshot(id: id, request: request, state: state, reason: reason,
                      legs: legs.mapValues { $0.snapshot(state: state) })
    }
}
