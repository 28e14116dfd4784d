import SpliceDataPlane

/// `GET /metrics`: the gateway's metrics in the Prometheus text exposition format.
struct MetricsHandler: Sendable {
    let gateway: Gateway

    func register(in router: inout Router) {
        router.add(.GET, "/metrics") { request, _ in
            try request.allowQuery([])
            return .text(200, gateway.metricsText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
    }
}
