/// An error the admin API reports to its caller, with the HTTP status it maps to.
///
/// Rendered as RFC 9457 problem+json by the control plane; the data plane throws
/// it too, so a refusal reads the same wherever it was decided.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Kind: Sendable, Equatable {
        case malformed, unauthorized, notFound, methodNotAllowed, conflict
        case tooLarge, unsupportedMediaType, invalid, badGateway, gatewayTimeout
        case stateNotSaved, clusterStoreUnavailable
    }

    private let kind: Kind
    /// The human-readable explanation of this occurrence.
    public let detail: String

    private init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    /// 400: the body is not well-formed JSON, or the request line is unusable.
    public static func malformed(_ detail: String) -> APIError { .init(.malformed, detail) }
    /// 401: the admin token is missing or wrong.
    public static func unauthorized(_ detail: String) -> APIError { .init(.unauthorized, detail) }
    /// 404: no such resource.
    public static func notFound(_ detail: String) -> APIError { .init(.notFound, detail) }
    /// 405: the path exists, the method does not.
    public static func methodNotAllowed(_ detail: String) -> APIError { .init(.methodNotAllowed, detail) }
    /// 409: the request conflicts with the resource's current state.
    public static func conflict(_ detail: String) -> APIError { .init(.conflict, detail) }
    /// 413: the request body exceeds the configured cap.
    public static func tooLarge(_ detail: String) -> APIError { .init(.tooLarge, detail) }
    /// 415: the body is not `application/json`.
    public static func unsupportedMediaType(_ detail: String) -> APIError { .init(.unsupportedMediaType, detail) }
    /// 422: well-formed JSON with a missing, unknown or invalid field.
    public static func invalid(_ detail: String) -> APIError { .init(.invalid, detail) }
    /// 502: a mediator, recipient or upstream could not be reached.
    public static func badGateway(_ detail: String) -> APIError { .init(.badGateway, detail) }
    /// 504: a drain did not finish in time.
    public static func gatewayTimeout(_ detail: String) -> APIError { .init(.gatewayTimeout, detail) }
    /// 500: the change could not be written to the state file (disk full, permissions).
    public static func stateNotSaved(_ detail: String) -> APIError { .init(.stateNotSaved, detail) }
    /// 503: the cluster's database is unreachable, so a change to listeners or mediators
    /// cannot be committed (the node goes on relaying with what it has).
    public static func clusterStoreUnavailable(_ detail: String) -> APIError {
        .init(.clusterStoreUnavailable, detail)
    }

    /// The HTTP status code.
    public var status: Int {
        switch kind {
        case .malformed: 400
        case .unauthorized: 401
        case .notFound: 404
        case .methodNotAllowed: 405
        case .conflict: 409
        case .tooLarge: 413
        case .unsupportedMediaType: 415
        case .invalid: 422
        case .badGateway: 502
        case .gatewayTimeout: 504
        case .stateNotSaved: 500
        case .clusterStoreUnavailable: 503
        }
    }

    /// The short, occurrence-independent summary (RFC 9457 `title`).
    public var title: String {
        switch kind {
        case .malformed: "Malformed request"
        case .unauthorized: "Unauthorized"
        case .notFound: "Not found"
        case .methodNotAllowed: "Method not allowed"
        case .conflict: "Conflict"
        case .tooLarge: "Request body too large"
        case .unsupportedMediaType: "Unsupported media type"
        case .invalid: "Invalid field"
        case .badGateway: "Peer unreachable"
        case .gatewayTimeout: "Drain timed out"
        case .stateNotSaved: "State not saved"
        case .clusterStoreUnavailable: "Cluster store unavailable"
        }
    }

    /// A URI naming the problem type (RFC 9457 `type`), relative to the API.
    public var type: String {
        switch kind {
        case .malformed: "/problems/malformed"
        case .unauthorized: "/problems/unauthorized"
        case .notFound: "/problems/not-found"
        case .methodNotAllowed: "/problems/method-not-allowed"
        case .conflict: "/problems/conflict"
        case .tooLarge: "/problems/too-large"
        case .unsupportedMediaType: "/problems/unsupported-media-type"
        case .invalid: "/problems/invalid-field"
        case .badGateway: "/problems/peer-unreachable"
        case .gatewayTimeout: "/problems/drain-timeout"
        case .stateNotSaved: "/problems/state-not-saved"
        case .clusterStoreUnavailable: "/problems/cluster-store-unavailable"
        }
    }

    public var description: String { "\(status) \(title): \(detail)" }
}
