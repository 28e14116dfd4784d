import Foundation
import Logging

/// Serves the console from `web/` and the contract from `openapi/openapi.yaml`.
///
/// The files are read once at start-up and each gets its own route, so nothing outside
/// those files is reachable whatever the path says (`..`, encoded slashes, symlinks added
/// later), and an unknown path is the router's ordinary 404.
struct StaticFilesHandler: Sendable {
    /// One file ready to serve.
    struct File: Sendable {
        let bytes: [UInt8]
        let contentType: String
        let etag: String
    }

    let files: [String: File]

    /// Loads every regular file below `webRoot` (served at `/name`, `index.html` also at
    /// `/`) and the OpenAPI file (served at `/openapi.yaml`).
    init(webRoot: String?, openAPIFile: String?, logger: Logger) {
        var files: [String: File] = [:]
        if let webRoot {
            let root = URL(fileURLWithPath: webRoot).standardizedFileURL
            let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
            while let url = enumerator?.nextObject() as? URL {
                guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                      let data = FileManager.default.contents(atPath: url.path) else { continue }
                let relative = url.standardizedFileURL.path.dropFirst(root.path.count)
                files[String(relative)] = Self.file(Array(data), name: url.lastPathComponent)
            }
            if let index = files["/index.html"] { files["/"] = index }
            if files.isEmpty { logger.warning("no console files found", metadata: ["web_root": "\(webRoot)"]) }
        }
        if let openAPIFile, let data = FileManager.default.contents(atPath: openAPIFile) {
            files["/openapi.yaml"] = Self.file(Array(data), name: "openapi.yaml")
        } else {
            logger.warning("OpenAPI file not found", metadata: ["path": "\(openAPIFile ?? "none")"])
        }
        self.files = files
    }

    func register(in router: inout Router) {
        for (path, file) in files {
            router.add(.GET, path) { request, _ in
                var response: HTTPResponse
                if request.headers["If-None-Match"] == file.etag {
                    response = HTTPResponse(status: 304)
                } else {
                    response = .bytes(200, file.bytes, contentType: file.contentType)
                }
                response.headers.set("ETag", file.etag)
                // Revalidate every time: the console must never run stale against a newer API.
                response.headers.set("Cache-Control", "no-cache")
                response.headers.set("X-Content-Type-Options", "nosniff")
                return response
            }
        }
    }

    private static func file(_ bytes: [UInt8], name: String) -> File {
        File(bytes: bytes, contentType: contentType(name), etag: "\"\(fnv1a(bytes))\"")
    }

    private static func contentType(_ name: String) -> String {
        switch name.split(separator: ".").last?.lowercased() {
        case "html": "text/html; charset=utf-8"
        case "js", "mjs": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "json": "application/json"
        case "yaml", "yml": "application/yaml"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "txt", "md": "text/plain; charset=utf-8"
        default: "application/octet-stream"
        }
    }

    /// A content hash for the ETag (not security-relevant).
    private static func fnv1a(_ bytes: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
