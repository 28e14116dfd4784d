import Foundation
import OpenAPIRuntime
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

extension CtlFailure {
    /// Sorts an error thrown by the generated client: a problem document (exit 1), no
    /// exchange with the gateway at all (exit 3), or anything else the client could not read (1).
    init(_ error: any Error, adminURL: String) {
        switch error {
        case let failure as CtlFailure:
            self = failure
        case let problem as APIProblem:
            self = .problem(problem.problem)
        case let client as ClientError:
            if let problem = client.underlyingError as? APIProblem {
                self = .problem(problem.problem)
            } else if let urlError = client.underlyingError as? URLError {
                self = .unreachable(adminURL, urlError.localizedDescription)
            } else {
                self = .unexpected("\(client.operationID): \(client.causeDescription): \(client.underlyingError)")
            }
        default:
            self = .unexpected("\(error)")
        }
    }
}
