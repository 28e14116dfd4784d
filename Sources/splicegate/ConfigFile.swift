import Foundation
import SpliceControlPlane
import SpliceCore

/// The `--config` file: `{"listeners": [...], "mediators": [...], "admin": {...}}`, the
/// listeners and mediators being the same objects as the API's POST bodies (plus `exec`
/// mediators, which only the config file may define).
enum ConfigFile {
    static let fields: Set<String> = [
        "listeners", "mediators", "admin", "allow_adhoc_mediators", "max_sessions", "grace_period_s", "event_loops",
        "cluster",
    ]
    static let clusterFields: Set<String> = ["database_url", "node", "advertise", "bind_host"]
    static let adminFields: Set<String> = [
        "address", "token_file", "max_body_bytes", "connection_limit", "idle_timeout_s", "head_timeout_s",
    ]

    static func load(_ path: String, into settings: inout Settings) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StartupError("cannot read config file \(path): \(ReadFailure.reason(path))")
        }
        do throws(APIError) {
            let reader = try JSONObjectReader(JSON.parse(Array(data)), allowed: fields)
            for (index, entry) in (try reader.optionalArray("mediators") ?? []).enumerated() {
                do {
                    settings.mediators.append(try MediatorSpec(json: entry, allowExec: true))
                } catch {
                    throw APIError.invalid("mediators[\(index)]: \(error.detail)")
                }
            }
            if let allow = try reader.optionalBool("allow_adhoc_mediators") {
                settings.allowAdHocMediators = allow
            }
            for (index, entry) in (try reader.optionalArray("listeners") ?? []).enumerated() {
                do {
                    settings.listeners.append(try ListenerSpec(json: entry))
                } catch {
                    throw APIError.invalid("listeners[\(index)]: \(error.detail)")
                }
            }
            if let limit = try reader.optionalInt("max_sessions", min: 1, max: 10_000_000) {
                settings.maxSessions = Int(limit)
            }
            if let grace = try reader.optionalInt("grace_period_s", min: 0, max: 86_400) {
                settings.gracePeriod = Double(grace)
            }
            if let loops = try reader.optionalInt("event_loops", min: 1, max: 1024) {
                settings.eventLoops = Int(loops)
            }
            if let cluster = try reader.optionalObject("cluster") {
                let cluster = try JSONObjectReader(.object(cluster), allowed: clusterFields)
                settings.clusterFile = ClusterSettings.FromFile(
                    databaseURL: try cluster.optionalString("database_url"), node: try cluster.optionalString("node"),
                    advertise: try cluster.optionalString("advertise"), bindHost: try cluster.optionalString("bind_host"))
            }
            if let admin = try reader.optionalObject("admin") {
                try apply(admin: JSONObjectReader(.object(admin), allowed: adminFields), to: &settings)
            }
        } catch {
            throw StartupError("config file \(path): \(error.detail)")
        }
    }

    private static func apply(admin: JSONObjectReader, to settings: inout Settings) throws(APIError) {
        if let address = try admin.optionalString("address") {
            settings.admin = try HostPort(parsing: address, field: "admin.address")
        }
        if let tokenFile = try admin.optionalString("token_file") {
            do {
                settings.token = try AdminAuth.readTokenFile(tokenFile)
            } catch {
                throw .invalid("admin.token_file: \(error.description)")
            }
        }
        if let bytes = try admin.optionalInt("max_body_bytes", min: 1024, max: 16 << 20) {
            settings.http.maxBodyBytes = Int(bytes)
        }
        if let limit = try admin.optionalInt("connection_limit", min: 1, max: 65_536) {
            settings.http.connectionLimit = Int(limit)
        }
        if let head = try admin.optionalInt("head_timeout_s", min: 1, max: 3_600) {
            settings.http.headTimeoutSeconds = Int(head)
        }
        if let idle = try admin.optionalInt("idle_timeout_s", min: 1, max: 86_400) {
            settings.http.idleTimeoutSeconds = Int(idle)
        }
    }
}
