#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import SpliceCore
import SpliceIO

/// A failed dial, said the way a person reads it: `cannot connect to 127.0.0.1:9: connection
/// refused`, not NIO's `connection reset (error set): Connection refused (errno: 111)`.
struct DialError: Error, CustomStringConvertible {
    /// Where the dial went.
    let address: HostPort
    /// Why it failed, in a few lower-case words.
    let reason: String

    var description: String { "cannot connect to \(address): \(reason)" }

    init(_ address: HostPort, _ error: any Error) {
        self.address = address
        self.reason = Self.reason(error)
    }

    /// The cause in words: the errno's text for socket errors, the first address's failure
    /// when several were tried, the timeout when it ran out.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as RelayIOError:
            return error.reason
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return reason(first.error) }
            if let lookup = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(reason(lookup))" }
            return "no address found for \(error.host)"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        case ChannelError.connectTimeout(let timeout):
            return "no answer within \(timeout.nanoseconds / 1_000_000) ms"
        default:
            return "\(error)"
        }
    }
}
