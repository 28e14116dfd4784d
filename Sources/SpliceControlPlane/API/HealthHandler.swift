import Foundation

/// `GET /api/v1/health`: liveness, version and uptime; never needs the token.
struct HealthHandler: Sendable {
    let version: String
    let startedAt: Date

    func register(in router: inout Router) {
        router.add(.GET, "/api/v1/health") { request, _ in
            try request.allowQuery([])
            return .json(200, [
                "status": "ok",
                "version": .string(version),
                "uptime_s": .double((Date().timeIntervalSince(startedAt) * 1000).rounded() / 1000),
            ])
        }
    }
}
