import NIOCore
import SpliceCore

extension Session {
    /// Opens one channel per direction for a splice or a split, then runs `apply` on the
    /// loop with all of them at once. If any failed to open, or the session ended or a
    /// direction reached EOF meanwhile, what did open is discarded and the future fails
    /// with the reason: the session is left as it was.
    ///
    /// The directions count as reconfiguring while the channels open, so a second change
    /// to them is refused (409) until this one has taken effect.
    func openLegs<Leg: Sendable, Result: Sendable>(
        _ directions: [Direction], peer: String,
        open: (PortHandler) -> EventLoopFuture<Leg>,
        discard: @escaping (Leg) -> Void,
        apply: @escaping ([(direction: Direction, handler: PortHandler, leg: Leg)]) throws -> Result
    ) -> EventLoopFuture<Result> {
        reconfiguring.formUnion(directions)
        let handlers = directions.map { _ in PortHandler() }
        let legs = handlers.map(open)
        return EventLoopFuture.whenAllComplete(legs, on: eventLoop).assumeIsolated().flatMapThrowing { results in
            self.reconfiguring.subtract(directions)
            let opened = zip(directions, zip(handlers, results)).compactMap { direction, pair in
                (try? pair.1.get()).map { (direction: direction, handler: pair.0, leg: $0) }
            }
            let unreachable = results.lazy.compactMap { result -> APIError? in
                guard case .failure(let error) = result else { return nil }
                return error as? APIError ?? .badGateway("\(peer) unreachable: \(error)")
            }.first
            let changed: APIError? = self.ending
                ? .conflict("session \(self.record.id) ended while \(peer) was connecting")
                : directions.lazy.compactMap(self.busyReason).first.map { .conflict($0) }
            if let failure = unreachable ?? changed {
                opened.forEach { discard($0.leg) }
                throw failure
            }
            return try apply(opened)
        }.nonisolated()
    }
}
