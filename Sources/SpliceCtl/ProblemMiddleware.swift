import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Turns every `application/problem+json` answer into a thrown `APIProblem`, decoded with
/// the generated `Problem` schema, so that each command handles only its success case and
/// every error reads the same way.
struct ProblemMiddleware: ClientMiddleware {
    /// The most of a problem body that is read.
    static let maxProblemBytes = 1 << 20

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.code >= 400,
              let type = response.headerFields[.contentType], type.lowercased().hasPrefix("application/problem+json"),
              let responseBody
        else { return (response, responseBody) }
        let bytes = try await Data(collecting: responseBody, upTo: Self.maxProblemBytes)
        guard let problem = try? JSONDecoder().decode(Components.Schemas.Problem.self, from: bytes) else {
            return (response, HTTPBody(bytes))
        }
        throw APIProblem(problem: problem)
    }
}

/// A problem document the gateway answered.
struct APIProblem: Error, Sendable {
    let problem: Components.Schemas.Problem
}
