import SpliceCore
import SpliceDataPlane

extension GatewayFuture {
    /// A response to be completed when the operation is: with what `respond` makes of its
    /// value, or with the problem for its failure (or for what `respond` throws). `respond`
    /// runs on the event loop that completed the operation, so it only builds the response
    /// (encoding a small JSON body); it must not write files or wait.
    func response(_ respond: @escaping @Sendable (Value) throws(APIError) -> HTTPResponse) -> PendingResponse {
        let pending = PendingResponse()
        whenComplete { result in
            do throws(APIError) {
                pending.complete(try respond(result.get()))
            } catch {
                pending.complete(.problem(error))
            }
        }
        return pending
    }
}
