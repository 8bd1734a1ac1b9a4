import Metrics
import Prometheus
import Synchronization

/// The process-wide Prometheus registry behind swift-metrics (bootstrapped once per process).
public enum VigilMetrics {
    private static let state = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with Prometheus on first call; later calls return the same registry.
    public static func registry() -> PrometheusCollectorRegistry {
        state.withLock { r in
            if let r { return r }
            let reg = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: reg))
            r = reg
            return reg
        }
    }

    /// Prometheus text exposition of every metric.
    public static func exposition() -> String {
        var buf: [UInt8] = []
        registry().emit(into: &buf)
        return String(decoding: buf, as: UTF8.self)
    }
}
