import Foundation
import ScanEngine
import VigilCore

/// One CloudWatch series asked for: a namespace, a metric, its dimensions and a statistic, per day.
public struct MetricQuery: Sendable, Hashable {
    public var namespace: String
    public var metric: String
    public var dimensions: [String: String]
    /// `Average`, `Maximum` or `Sum`.
    public var stat: String

    public init(_ namespace: String, _ metric: String, _ dimensions: [String: String], _ stat: String) {
        self.namespace = namespace
        self.metric = metric
        self.dimensions = dimensions
        self.stat = stat
    }
}

/// CloudWatch `GetMetricData` over a lookback window at one value per day: up to 500 queries a call,
/// each call paginated. A series with no datapoints comes back empty (unknown), never as zeros.
public enum CloudWatchMetrics {
    public static let version = "2010-08-01"
    public static let maxQueriesPerCall = 500
    /// Seconds one `GetMetricData` call may take (500 queries over up to 90 days).
    public static let callTimeout = 120.0

    /// Daily values of each query over the last `days` days (oldest first).
    public static func fetch(_ queries: [MetricQuery], ctx: CollectContext, days: Int) async throws -> [MetricQuery: [Double]] {
        let unique = Array(Set(queries))
        guard !unique.isEmpty else { return [:] }
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let end = cal.startOfDay(for: ctx.now).addingTimeInterval(86_400)
        let start = end.addingTimeInterval(-Double(days) * 86_400)
        var out: [MetricQuery: [Double]] = [:]
        for batchStart in stride(from: 0, to: unique.count, by: maxQueriesPerCall) {
            let batch = Array(unique[batchStart..<min(unique.count, batchStart + maxQueriesPerCall)])
            var params: [(String, String)] = [
                ("StartTime", Timestamp.format(start)), ("EndTime", Timestamp.format(end)), ("ScanBy", "TimestampAscending"),
            ]
            for (i, q) in batch.enumerated() {
                let p = "MetricDataQueries.member.\(i + 1)"
                params += [
                    ("\(p).Id", "q\(i)"), ("\(p).MetricStat.Metric.Namespace", q.namespace), ("\(p).MetricStat.Metric.MetricName", q.metric),
                    ("\(p).MetricStat.Period", "86400"), ("\(p).MetricStat.Stat", q.stat), ("\(p).ReturnData", "true"),
                ]
                for (j, (name, value)) in q.dimensions.sorted(by: { $0.key < $1.key }).enumerated() {
                    params += [
                        ("\(p).MetricStat.Metric.Dimensions.member.\(j + 1).Name", name),
                        ("\(p).MetricStat.Metric.Dimensions.member.\(j + 1).Value", value),
                    ]
                }
            }
            let pages = try await ctx.client.with(timeout: callTimeout).queryPages(
                service: "monitoring", region: ctx.region, action: "GetMetricData", version: version, params: params, maxPages: 50)
            for page in pages {
                for r in page.list("MetricDataResults") {
                    guard let id = r["Id"], id.hasPrefix("q"), let i = Int(id.dropFirst()), i < batch.count else { continue }
                    out[batch[i], default: []] += r.list("Values").compactMap { Double($0.text) }
                }
            }
        }
        return out
    }
}

/// Statistics of a daily series, as findings quote them.
public struct SeriesSummary: Sendable {
    public var average: Double
    public var maximum: Double
    public var p95: Double
    public var days: Int

    /// Nil for an empty series (no datapoints: unknown).
    public init?(averages: [Double], maxima: [Double]? = nil) {
        guard !averages.isEmpty else { return nil }
        average = averages.reduce(0, +) / Double(averages.count)
        let peaks = (maxima?.isEmpty == false ? maxima! : averages).sorted()
        maximum = peaks.last ?? 0
        p95 = peaks[min(peaks.count - 1, Int((Double(peaks.count) * 0.95).rounded(.up)) - 1)]
        days = averages.count
    }

    /// Sum per day of a daily `Sum` series, or nil when empty.
    public static func perDay(_ sums: [Double]?) -> Double? {
        guard let s = sums, !s.isEmpty else { return nil }
        return s.reduce(0, +) / Double(s.count)
    }
}

func round1(_ v: Double) -> Double { (v * 10).rounded() / 10 }
func money(_ v: Double) -> Double { (v * 100).rounded() / 100 }
