/// Why a `ctl` command failed, with the exit code the contract gives it.
struct CtlFailure: Error, Sendable {
    /// The exit code for a usage error.
    static let usageCode: Int32 = 2

    /// The process exit code.
    let exitCode: Int32
    /// What is printed on stderr.
    let message: String

    /// The API answered a problem document: exit 1 with its `detail`.
    static func problem(_ problem: Components.Schemas.Problem) -> CtlFailure {
        CtlFailure(exitCode: 1, message: "\(problem.detail) (\(problem.status) \(problem.title))")
    }

    /// The API answered something the contract does not describe: exit 1.
    static func unexpected(_ what: String) -> CtlFailure {
        CtlFailure(exitCode: 1, message: "unexpected answer: \(what)")
    }

    /// Writing the command's own output failed (a full disk, say): exit 1.
    static func output(_ message: String) -> CtlFailure {
        CtlFailure(exitCode: 1, message: message)
    }

    /// Bad arguments or settings: exit 2.
    static func usage(_ message: String) -> CtlFailure {
        CtlFailure(exitCode: usageCode, message: message)
    }

    /// No HTTP exchange with the gateway was possible: exit 3.
    static func unreachable(_ url: String, _ reason: String) -> CtlFailure {
        CtlFailure(exitCode: 3, message: "gateway unreachable at \(url): \(reason)")
    }
}
