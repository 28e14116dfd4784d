import Foundation
import HTTPTypes
import OpenAPIRuntime
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A client transport that hands a response body on as its bytes arrive, for the endless
/// event and capture streams. `URLSessionTransport` buffers whole bodies on Linux (its
/// streaming mode throws "Streaming is not supported on this platform"), so `ctl events`
/// would print nothing until the gateway ends the stream; this one reads through a
/// URLSession data delegate instead. Request bodies are not sent (both streams are GETs).
struct StreamingTransport: ClientTransport {
    /// How long the event stream may go without a byte; its keep-alive comes every 10 s.
    static let eventsIdleTimeout: TimeInterval = 60

    /// How long the stream may go without a byte before it fails.
    var idleTimeout: TimeInterval = Self.eventsIdleTimeout

    func send(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let url = URL(string: baseURL.absoluteString + (request.path ?? "")) else {
            throw URLError(.badURL)
        }
        var urlRequest = URLRequest(url: url, timeoutInterval: idleTimeout)
        urlRequest.httpMethod = request.method.rawValue
        for field in request.headerFields {
            urlRequest.addValue(field.value, forHTTPHeaderField: field.name.canonicalName)
        }
        let delegate = StreamingDelegate()
        let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
        session.dataTask(with: urlRequest).resume()
        session.finishTasksAndInvalidate()
        for try await response in delegate.head {
            return (response, HTTPBody(delegate.body, length: .unknown, iterationBehavior: .single))
        }
        throw URLError(.badServerResponse)
    }
}

/// Feeds one data task's response head and body bytes into two async streams.
private final class StreamingDelegate: NSObject, URLSessionDataDelegate, Sendable {
    /// The response head, once it is in.
    let head: AsyncThrowingStream<HTTPResponse, any Error>
    /// The body's bytes as they arrive.
    let body: AsyncThrowingStream<ArraySlice<UInt8>, any Error>
    private let headInput: AsyncThrowingStream<HTTPResponse, any Error>.Continuation
    private let bodyInput: AsyncThrowingStream<ArraySlice<UInt8>, any Error>.Continuation

    override init() {
        (head, headInput) = AsyncThrowingStream.makeStream()
        (body, bodyInput) = AsyncThrowingStream.makeStream()
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        guard let http = response as? HTTPURLResponse else {
            headInput.finish(throwing: URLError(.badServerResponse))
            completionHandler(.cancel)
            return
        }
        var fields = HTTPFields()
        for (key, value) in http.allHeaderFields {
            if let key = key as? String, let value = value as? String, let name = HTTPField.Name(key) {
                fields.append(HTTPField(name: name, value: value))
            }
        }
        headInput.yield(HTTPResponse(status: .init(code: http.statusCode), headerFields: fields))
        headInput.finish()
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        bodyInput.yield(ArraySlice(data))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        // Ends whichever is still open: a failed connection has no head yet.
        headInput.finish(throwing: error)
        bodyInput.finish(throwing: error)
    }
}
