import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import SpliceControlPlane
import SpliceCore
import SpliceCtl
import SpliceDataPlane

/// The `splicegate` command: the gateway, its admin API and, with `--demo`, something to
/// play with.
@main
struct Splicegate: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "splicegate",
        abstract: "A TCP mediation gateway: relay, splice, split and fail over live TCP sessions.",
        // The generated line ends in `<subcommand>`, though the gateway itself needs none.
        usage: """
            splicegate [<options>]
            splicegate mediator [<options>]
            splicegate ctl <command> [<options>]
            """,
        version: version,
        subcommands: [MediatorCommand.self, CtlCommand.self])

    /// `ctl` keeps the exit codes of its contract (usage is 2, not ArgumentParser's 64).
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "ctl" { Ctl.main(root: Self.self, arguments: arguments) }
        main(nil)
    }

    @Option(help: "Admin API address HOST:PORT; port 0 binds an ephemeral port. (default: 127.0.0.1:8080, or admin.address of --config)")
    var admin: String?

    @Option(help: "JSON config file: `listeners` and `admin` settings. (default: none)")
    var config: String?

    @Option(help: "File holding the admin token (trailing newline ignored). Env: SPLICEGATE_ADMIN_TOKEN.")
    var adminTokenFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: "Save runtime changes to listeners and mediators here and restore them at start (wins over --config once it exists). (default: none, changes are not saved)")
    var stateFile: String?

    @Option(help: "Seconds live sessions may take to finish after SIGTERM/SIGINT before they are closed. (default: 30)")
    var gracePeriod: Double?

    @Option(help: "Most live sessions over all listeners; clients beyond it are closed at once. (default: no limit)")
    var maxSessions: Int?

    @Option(help: "Event-loop threads for the relay; fewer can pay when load generators or the upstream share the cores. (default: one per core)")
    var eventLoops: Int?

    @Option(name: .customLong("cluster-db"), help: "Join a cluster: keep listeners, mediators and membership in this PostgreSQL database, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=CA.pem] (replaces --state-file; waited for 5 s at start, then start-up fails). (default: none, or cluster.database_url of --config)")
    var clusterDB: String?

    @Option(help: "This node's name in the cluster, unique among live nodes. (default: HOSTNAME:ADMINPORT)")
    var node: String?

    @Option(help: "The URL other nodes reach this node's admin API at. (default: the bound admin address, http://HOST:PORT)")
    var advertise: String?

    @Option(help: "Bind every cluster listener on this host instead of the one its listen address names (several nodes on one machine). (default: the listener's own host)")
    var bindHost: String?

    @Option(help: "Accept a successor process (`--take-over PATH`) on this Unix socket, mode 0600, and hand it the live sessions. (default: none)")
    var handoffSocket: String?

    @Option(help: "Seconds a handoff may take, from the successor's hello to its acknowledgement, before this process resumes everything, however the successor behaves. (default: 30)")
    var handoffTimeout: Double?

    @Option(help: "Start by taking over the listeners and live sessions of the gateway whose --handoff-socket is PATH; it exits once this process has them. (default: none)")
    var takeOver: String?

    @Flag(help: "Start a built-in echo upstream and a listener for it.")
    var demo = false

    @Option(help: "Where the demo listener accepts (with --demo).")
    var demoListen = "127.0.0.1:7000"

    @Option(help: "Directory of the web console (default: web/ of the source tree or the current directory).")
    var webRoot: String?

    @Option(help: "OpenAPI file served at /openapi.yaml (default: openapi/openapi.yaml beside web/).")
    var openapiFile: String?

    mutating func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "splicegate")
        do {
            let settings = try Settings.resolve(command: self)
            try Runtime(settings: settings, logger: logger).run()
        } catch {
            logger.critical("cannot start", metadata: ["reason": "\(error)"])
            throw ExitCode(2)
        }
    }
}
