import NIOCore
import SpliceCore
import SpliceIO

extension Session {
    /// Opens one socket per direction for a splice or a split, then runs `apply` on the
    /// loop with all of them at once. If any failed to open, or the session ended or a
    /// direction reached EOF meanwhile, what did open is discarded and the future fails
    /// with the reason: the session is left as it was.
    ///
    /// The directions count as reconfiguring while the sockets open, so a second change
    /// to them is refused (409) until this one has taken effect.
    func openLegs<Leg, Outcome: Sendable>(
        _ directions: [Direction], peer: String,
        open: () -> EventLoopFuture<Leg>,
        discard: @escaping (Leg) -> Void,
        apply: @escaping ([(direction: Direction, leg: Leg)]) throws -> Outcome
    ) -> EventLoopFuture<Outcome> {
        machine.beginReconfiguring(directions)
        let promise = eventLoop.makePromise(of: Outcome.self)
        let results = LegResults<Leg>(count: directions.count)
        for (index, future) in directions.map({ _ in open() }).enumerated() {
            future.assumeIsolated().whenComplete { result in
                guard results.set(index, result) else { return }
                self.machine.endReconfiguring(directions)
                let opened = zip(directions, results.all).compactMap { direction, result in
                    (try? result.get()).map { (direction: direction, leg: $0) }
                }
                let unreachable = results.all.lazy.compactMap { result -> APIError? in
                    guard case .failure(let error) = result else { return nil }
                    return error as? APIError ?? .badGateway("\(peer) unreachable: \(error)")
                }.first
                let changed: APIError? = self.ending
                    ? .conflict("session \(self.record.id) ended while \(peer) was connecting")
                    : self.refusal(directions).map { .conflict($0) }
                if let failure = unreachable ?? changed {
                    opened.forEach { discard($0.leg) }
                    return promise.fail(failure)
                }
                do {
                    promise.succeed(try apply(opened))
                } catch {
                    promise.fail(error)
                }
            }
        }
        return promise.futureResult
    }
}

/// The outcomes of opening a reconfiguration's legs, as they come in.
private final class LegResults<Leg> {
    private var slots: [Result<Leg, any Error>?]
    private var remaining: Int

    init(count: Int) {
        slots = Array(repeating: nil, count: count)
        remaining = count
    }

    /// Records one outcome; true once all are in.
    func set(_ index: Int, _ result: Result<Leg, any Error>) -> Bool {
        slots[index] = result
        remaining -= 1
        return remaining == 0
    }

    var all: [Result<Leg, any Error>] { slots.compactMap { $0 } }
}
