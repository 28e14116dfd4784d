import Foundation
import SpliceControlPlane
import SpliceCore

/// The `--config` file: `{"listeners": [...], "admin": {...}}`, the listeners being the
/// same objects as `POST /api/v1/listeners` bodies.
enum ConfigFile {
    static let fields: Set<String> = ["listeners", "admin"]
    static let adminFields: Set<String> = [
        "address", "token_file", "max_body_bytes", "connection_limit", "idle_timeout_s",
    ]

    static func load(_ path: String, into settings: inout Settings) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StartupError("cannot read config file \(path)")
        }
        do throws(APIError) {
            let reader = try JSONObjectReader(JSON.parse(Array(data)), allowed: fields)
            for (index, entry) in (try reader.optionalArray("listeners") ?? []).enumerated() {
                do {
                    settings.listeners.append(try ListenerSpec(json: entry))
                } catch {
                    throw APIError.invalid("listeners[\(index)]: \(error.detail)")
                }
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
        if let idle = try admin.optionalInt("idle_timeout_s", min: 1, max: 86_400) {
            settings.http.idleTimeoutSeconds = Int(idle)
        }
    }
}
