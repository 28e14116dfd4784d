import SpliceCore

extension PendingResponse {
    /// A response completed by `respond`, run as a task: for answers that await another
    /// process (the cluster's database) without holding a server thread. A thrown error is
    /// answered as its problem.
    static func task(_ respond: @escaping @Sendable () async throws(APIError) -> HTTPResponse) -> PendingResponse {
        let pending = PendingResponse()
        Task {
            do throws(APIError) {
                pending.complete(try await respond())
            } catch {
                pending.complete(.problem(error))
            }
        }
        return pending
    }
}
