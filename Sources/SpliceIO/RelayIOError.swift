#if canImport(Glibc)
import Glibc
#endif

/// A failed socket operation, in words an operator reads: `connection refused`, not
/// `errno 111`.
public struct RelayIOError: Error, Sendable, CustomStringConvertible, Equatable {
    private enum Kind: Equatable {
        case system(op: String, errno: Int32)
        case timeout(milliseconds: Int64)
        case resolve(host: String, reason: String)
        case closed
    }

    private let kind: Kind

    /// A system call that failed with `errno`.
    public static func system(_ op: String, _ errno: Int32) -> RelayIOError { .init(kind: .system(op: op, errno: errno)) }
    /// A connect that got no answer in time.
    public static func timeout(milliseconds: Int64) -> RelayIOError { .init(kind: .timeout(milliseconds: milliseconds)) }
    /// A host name that did not resolve.
    public static func resolve(_ host: String, _ reason: String) -> RelayIOError { .init(kind: .resolve(host: host, reason: reason)) }
    /// An operation on a socket that is already closed.
    public static let closed = RelayIOError(kind: .closed)

    /// The errno, for system errors.
    public var errnoCode: Int32? {
        if case .system(_, let code) = kind { return code }
        return nil
    }

    /// The cause in a few lower-case words (what a dial failure reports).
    public var reason: String {
        switch kind {
        case .system(_, let code): String(cString: strerror(code)).lowercased()
        case .timeout(let ms): "no answer within \(ms) ms"
        case .resolve(let host, let reason): "cannot resolve \(host): \(reason)"
        case .closed: "socket closed"
        }
    }

    public var description: String {
        if case .system(let op, _) = kind { return "\(op): \(reason)" }
        return reason
    }
}
