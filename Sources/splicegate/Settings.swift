import Foundation
import NIOCore
import SpliceCluster
import SpliceControlPlane
import SpliceCore

/// Everything the process runs with: flags over the config file over defaults.
struct Settings {
    var admin = HostPort(host: "127.0.0.1", port: 8080)
    var token: String?
    var listeners: [ListenerSpec] = []
    var mediators: [MediatorSpec] = []
    var allowAdHocMediators = true
    var demoListen: HostPort?
    var webRoot: String?
    var openAPIFile: String?
    var http = HTTPServer.Configuration(host: "127.0.0.1", port: 8080)
    /// Where runtime changes are saved and restored from (`--state-file`).
    var stateFile: String?
    /// Seconds live sessions may take to finish after SIGTERM/SIGINT.
    var gracePeriod: Double = 30
    /// Most live sessions over all listeners; nil for no limit.
    var maxSessions: Int?
    /// Event-loop threads for the relay.
    var eventLoops = System.coreCount
    /// The cluster's database (`--cluster-db`); nil: a gateway on its own.
    var cluster: ClusterSettings?
    /// Where a successor may connect to take the live sessions over (`--handoff-socket`).
    var handoffSocket: String?
    /// How long a handoff may take from the successor's hello to its ack (`--handoff-timeout`).
    var handoffTimeout: Duration = .seconds(30)
    /// The running gateway to take over from (`--take-over`).
    var takeOver: String?
    /// The config file's `cluster` object, resolved with the flags into `cluster`.
    var clusterFile = ClusterSettings.FromFile()

    static func resolve(command: Splicegate) throws -> Settings {
        var settings = Settings()
        if let path = command.config {
            try ConfigFile.load(path, into: &settings)
        }
        if let admin = command.admin {
            do {
                settings.admin = try HostPort(parsing: admin, field: "--admin")
            } catch {
                throw StartupError(error.detail)
            }
        }
        if let path = command.adminTokenFile {
            do {
                settings.token = try AdminAuth.readTokenFile(path)
            } catch {
                throw StartupError(error.description)
            }
        } else if settings.token == nil, let token = ProcessInfo.processInfo.environment["SPLICEGATE_ADMIN_TOKEN"],
                  !token.isEmpty {
            settings.token = token
        }
        if let path = command.stateFile {
            guard !path.isEmpty else { throw StartupError("--state-file needs a path") }
            settings.stateFile = path
        }
        try ClusterSettings.apply(command, to: &settings)
        if let grace = command.gracePeriod {
            guard grace >= 0, grace <= 86_400 else { throw StartupError("--grace-period must be 0 to 86400 seconds") }
            settings.gracePeriod = grace
        }
        if let limit = command.maxSessions {
            guard limit >= 1 else { throw StartupError("--max-sessions must be at least 1") }
            settings.maxSessions = limit
        }
        if let loops = command.eventLoops {
            guard (1...1024).contains(loops) else { throw StartupError("--event-loops must be 1 to 1024") }
            settings.eventLoops = loops
        }
        if command.demo {
            guard settings.cluster == nil else {
                throw StartupError("--demo cannot join a cluster (--cluster-db): its listener and mediators are local")
            }
            do {
                settings.demoListen = try HostPort(parsing: command.demoListen, field: "--demo-listen")
            } catch {
                throw StartupError(error.detail)
            }
        }
        try resolveHandoff(command, into: &settings)
        let source = SourceTree.locate()
        settings.webRoot = command.webRoot ?? source.map { $0 + "/web" }
        settings.openAPIFile = command.openapiFile ?? source.map { $0 + "/openapi/openapi.yaml" }
        settings.http.host = settings.admin.host
        settings.http.port = settings.admin.port
        do {
            try AdminAuth.checkBinding(host: settings.admin.host, tokenConfigured: settings.token != nil)
        } catch {
            throw StartupError(error.description)
        }
        return settings
    }
}

extension Settings {
    /// `--handoff-socket` and `--take-over` (issue 15). A successor is started with its
    /// predecessor's command line plus `--take-over`: the config file's listeners and
    /// mediators are then not applied (the running gateway's are taken, as a state file's
    /// would be), its admin settings are.
    fileprivate static func resolveHandoff(_ command: Splicegate, into settings: inout Settings) throws {
        if let path = command.handoffSocket {
            guard !path.isEmpty else { throw StartupError("--handoff-socket needs a path") }
            settings.handoffSocket = path
        }
        if let seconds = command.handoffTimeout {
            guard command.handoffSocket != nil else { throw StartupError("--handoff-timeout needs --handoff-socket") }
            guard seconds.isFinite, seconds > 0, seconds <= 600 else {
                throw StartupError("--handoff-timeout must be more than 0 and at most 600 seconds")
            }
            settings.handoffTimeout = .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        if let path = command.takeOver {
            guard !path.isEmpty else { throw StartupError("--take-over needs a path") }
            settings.takeOver = path
        }
        guard settings.handoffSocket != nil || settings.takeOver != nil else { return }
        guard !command.demo else {
            throw StartupError("--demo cannot hand its sessions to a new process (--handoff-socket, --take-over): its echo upstream and sample mediators are servers inside the process, which no successor can take over")
        }
    }
}

/// Finds the directory holding `web/` and `openapi/`: the current directory, or the source
/// tree the binary was built in (`.build/<config>/splicegate`).
enum SourceTree {
    static func locate() -> String? {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidates = [
            FileManager.default.currentDirectoryPath,
            executable.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path,
            executable.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().path,
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/openapi/openapi.yaml") }
    }
}
