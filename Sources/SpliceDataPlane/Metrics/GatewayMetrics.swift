import Prometheus
import SpliceCore
import Synchronization

/// The gateway's Prometheus metrics: counters bumped once per session or reconfiguration
/// event, and gauges and byte totals derived from the live registry when scraped, so the
/// relay's per-read path pays nothing beyond the byte counters it already keeps.
public final class GatewayMetrics: Sendable {
    /// Where every metric lives; `/metrics` renders it.
    public let registry: PrometheusCollectorRegistry
    // Bytes of sessions that have ended; live sessions are added at scrape time.
    fileprivate let closedToServer = ByteCounter()
    fileprivate let closedToClient = ByteCounter()
    private let scrape = Mutex<ScrapeState>(ScrapeState())
    /// The admin request series made so far: looking them up in the registry for every
    /// request (label strings, name checks, its lock) took about 3 % of a request's CPU.
    private let adminSeries = Mutex<[AdminSeries: (requests: Counter, latency: DurationHistogram)]>([:])

    /// What earlier scrapes reported, so derived counters only ever grow.
    private struct ScrapeState {
        var toServer: UInt64 = 0
        var toClient: UInt64 = 0
        var activeGauges: [ListenerID: Gauge] = [:]
    }

    private let bytesToServer: Counter
    private let bytesToClient: Counter
    private let hopsSpliced: Counter
    private let hopsRemoved: Counter
    private let hopsFailed: Counter
    private let splitsAdded: Counter
    private let splitsDropped: Counter
    private let droppedBytes: Counter

    /// Metrics in `registry` (a fresh one by default, so gateways in one process stay apart).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        bytesToServer = registry.makeCounter(
            descriptor: Self.relayedBytes, labels: [("direction", Direction.clientToServer.rawValue)])
        bytesToClient = registry.makeCounter(
            descriptor: Self.relayedBytes, labels: [("direction", Direction.serverToClient.rawValue)])
        hopsSpliced = registry.makeCounter(descriptor: Self.name("hops_spliced", "total", "Mediator hops spliced into sessions."))
        hopsRemoved = registry.makeCounter(descriptor: Self.name("hops_removed", "total", "Mediator hops drained and removed."))
        hopsFailed = registry.makeCounter(descriptor: Self.name("hops_failed", "total",
            "Mediator hops that failed (refused, reset, exited or drain timeout)."))
        splitsAdded = registry.makeCounter(descriptor: Self.name("splits_added", "total", "Split recipients attached."))
        splitsDropped = registry.makeCounter(descriptor: Self.name("splits_dropped", "total",
            "Split recipients detached for falling behind (state dropped)."))
        droppedBytes = registry.makeCounter(descriptor: Self.name("split_dropped_bytes", "total",
            "Bytes not copied to split recipients that were too slow."))
    }

    // MARK: events (called by the data plane)

    /// A session was accepted by `listener`.
    /// A listener's labelled counters, made once: looking them up in the registry for every
    /// session (label strings, a lock) was a measurable share of a new connection's cost.
    final class ListenerCounters: Sendable {
        let opened: Counter
        let closed: [CloseReason: Counter]
        let rejected: [SessionLimitKind: Counter]
        let upstreamFailures: Counter
        private let metrics: GatewayMetrics

        init(_ listener: ListenerID, _ metrics: GatewayMetrics) {
            let label = ("listener", "\(listener)")
            let registry = metrics.registry
            self.metrics = metrics
            opened = registry.makeCounter(descriptor: GatewayMetrics.opened, labels: [label])
            closed = Dictionary(uniqueKeysWithValues: CloseReason.allCases.map { reason in
                (reason, registry.makeCounter(descriptor: GatewayMetrics.closed, labels: [label, ("reason", reason.rawValue)]))
            })
            rejected = Dictionary(uniqueKeysWithValues: SessionLimitKind.allCases.map { limit in
                (limit, registry.makeCounter(descriptor: GatewayMetrics.rejected, labels: [label, ("limit", limit.rawValue)]))
            })
            upstreamFailures = registry.makeCounter(descriptor: GatewayMetrics.upstreamFailures, labels: [label])
        }

        /// Removes this listener's series from the registry (its listener never started).
        func unregister() {
            let registry = metrics.registry
            ([opened, upstreamFailures] + Array(closed.values) + Array(rejected.values)).forEach(registry.unregisterCounter)
        }

        /// A session ended; its final byte counts join the closed-sessions totals.
        func sessionClosed(reason: CloseReason, bytes: ByteCounts) {
            metrics.closedToServer.add(Int(clamping: bytes.clientToServer))
            metrics.closedToClient.add(Int(clamping: bytes.serverToClient))
            closed[reason]?.increment()
        }
    }

    /// The counters of one listener.
    func counters(for listener: ListenerID) -> ListenerCounters {
        ListenerCounters(listener, self)
    }

    /// A hop took effect.
    public func hopSpliced() { hopsSpliced.increment() }
    /// A hop was drained and removed.
    public func hopRemoved() { hopsRemoved.increment() }
    /// A hop's mediator failed, whatever its policy did about it.
    public func hopFailed() { hopsFailed.increment() }
    /// A split recipient was attached.
    public func splitAdded() { splitsAdded.increment() }
    /// A split recipient was detached as `dropped`; `bytes` it will never get (0 if unknown).
    public func splitDropped(bytes: UInt64 = 0) {
        splitsDropped.increment()
        splitBytesDropped(bytes)
    }
    /// Bytes a slow split recipient missed.
    public func splitBytesDropped(_ bytes: UInt64) {
        guard bytes > 0 else { return }
        droppedBytes.increment(by: Int64(clamping: bytes))
    }

    // MARK: admin API

    /// One admin request answered: `route` is the matched pattern (`/api/v1/sessions/{id}`),
    /// never the raw path, so the label set stays small.
    public func adminRequest(method: String, route: String, status: Int, duration: Duration) {
        let key = AdminSeries(method: method, route: route, status: status)
        let series = adminSeries.withLock { known in
            if let made = known[key] { return made }
            let made = (
                requests: registry.makeCounter(descriptor: Self.adminRequests,
                                               labels: [("method", method), ("route", route), ("status", "\(status)")]),
                latency: registry.makeDurationHistogram(descriptor: Self.adminLatency,
                                                        labels: [("method", method), ("route", route)],
                                                        buckets: Self.latencyBuckets))
            known[key] = made
            return made
        }
        series.requests.increment()
        series.latency.record(duration)
    }

    /// The labels of one admin request series. Routes are patterns, so there are few.
    private struct AdminSeries: Hashable {
        let method: String
        let route: String
        let status: Int
    }

    private static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
        .seconds(5), .seconds(10),
    ]

    // MARK: scraping

    /// Brings the derived metrics up to date from the live sessions and current listeners.
    func refresh(live: [SessionRecord], listeners: [ListenerID]) {
        var toServer = closedToServer.value
        var toClient = closedToClient.value
        var active: [ListenerID: Int] = Dictionary(uniqueKeysWithValues: listeners.map { ($0, 0) })
        for record in live {
            toServer &+= record.toServer.value
            toClient &+= record.toClient.value
            active[record.listener, default: 0] += 1
        }
        scrape.withLock { state in
            // A session between leaving the registry and joining the closed totals is missing
            // for a moment; such a dip is skipped rather than reported as a decrease.
            if toServer > state.toServer {
                bytesToServer.increment(by: Int64(clamping: toServer - state.toServer))
                state.toServer = toServer
            }
            if toClient > state.toClient {
                bytesToClient.increment(by: Int64(clamping: toClient - state.toClient))
                state.toClient = toClient
            }
            for (listener, gauge) in state.activeGauges where active[listener] == nil {
                registry.unregisterGauge(gauge)
                state.activeGauges[listener] = nil
            }
            for (listener, count) in active {
                let gauge = state.activeGauges[listener]
                    ?? registry.makeGauge(descriptor: Self.active, labels: [("listener", "\(listener)")])
                state.activeGauges[listener] = gauge
                gauge.set(Double(count))
            }
        }
    }

    // MARK: names

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "splicegate", metricName: metric, unitName: unit, helpText: help)
    }

    private static var relayedBytes: MetricNameDescriptor {
        name("relayed_bytes", "total", "Bytes delivered to session endpoints, by direction.")
    }
    private static var opened: MetricNameDescriptor {
        name("sessions_opened", "total", "Sessions accepted, by listener.")
    }
    private static var closed: MetricNameDescriptor {
        name("sessions_closed", "total", "Sessions ended, by listener and close reason.")
    }
    private static var rejected: MetricNameDescriptor {
        name("sessions_rejected", "total",
             "Clients closed at once because a session limit was reached, by listener and limit.")
    }
    private static var upstreamFailures: MetricNameDescriptor {
        name("upstream_connect_failures", "total", "Upstream dials that were refused or timed out, by listener.")
    }
    private static var adminRequests: MetricNameDescriptor {
        name("admin_requests", "total", "Admin API requests answered, by method, route and status.")
    }
    private static var adminLatency: MetricNameDescriptor {
        name("admin_request_duration", "seconds", "Time to answer an admin API request, by method and route.")
    }
    private static var active: MetricNameDescriptor {
        name("sessions_active", "", "Live sessions, by listener.")
    }
}

/// Which session limit turned a client away.
enum SessionLimitKind: String, Sendable, CaseIterable {
    /// The listener's `max_sessions`.
    case listener
    /// The gateway's `--max-sessions`.
    case global
}
