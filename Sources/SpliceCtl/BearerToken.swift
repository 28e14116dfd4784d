import struct Foundation.URL
import HTTPTypes
import OpenAPIRuntime

/// Adds `Authorization: Bearer <token>` to every request of a generated `Client`, for a
/// gateway started with an admin token.
struct BearerToken: ClientMiddleware {
    private let token: String

    /// A middleware that sends `token`.
    init(_ token: String) {
        self.token = token
    }

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = "Bearer \(token)"
        return try await next(request, body, baseURL)
    }
}
