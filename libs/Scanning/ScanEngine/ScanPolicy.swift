import Foundation

/// The thresholds a workspace's utilisation checks are judged by (`GET/PATCH /settings/scan-policy`).
/// A resource is idle when every known figure over the lookback is at or under its threshold; a figure
/// the metrics do not have leaves the resource unknown, never idle.
public struct ScanPolicy: Codable, Sendable, Equatable {
    public struct Thresholds: Codable, Sendable, Equatable {
        /// Average CPU, percent.
        public var cpuPercent: Double?
        /// Network in + out, MB per day.
        public var networkMb: Double?
        /// Database / cache connections: the most seen in a day.
        public var connections: Double?
        /// Requests (load balancers), invocations (functions), read + write operations (volumes) per day.
        public var requests: Double?
        /// Days of metrics looked at.
        public var lookbackDays: Int?
        /// Findings saving less than this (USD a month) are not raised.
        public var minMonthlySavings: Double?
        /// Snapshots and images older than this are old.
        public var ageDays: Int?

        public init(
            cpuPercent: Double? = nil, networkMb: Double? = nil, connections: Double? = nil, requests: Double? = nil,
            lookbackDays: Int? = nil, minMonthlySavings: Double? = nil, ageDays: Int? = nil
        ) {
            self.cpuPercent = cpuPercent
            self.networkMb = networkMb
            self.connections = connections
            self.requests = requests
            self.lookbackDays = lookbackDays
            self.minMonthlySavings = minMonthlySavings
            self.ageDays = ageDays
        }

        /// `self` with the fields `other` sets.
        public func merged(_ other: Thresholds?) -> Thresholds {
            guard let o = other else { return self }
            return Thresholds(
                cpuPercent: o.cpuPercent ?? cpuPercent, networkMb: o.networkMb ?? networkMb, connections: o.connections ?? connections,
                requests: o.requests ?? requests, lookbackDays: o.lookbackDays ?? lookbackDays,
                minMonthlySavings: o.minMonthlySavings ?? minMonthlySavings, ageDays: o.ageDays ?? ageDays)
        }
    }

    public var global: Thresholds
    /// Per-service overrides (`ec2`, `rds`, `elbv2`, `nat`, `ebs`, `lambda`, `dynamodb`, `elasticache`, `redshift`).
    public var services: [String: Thresholds]

    public init(global: Thresholds = Self.defaults, services: [String: Thresholds] = [:]) {
        self.global = global
        self.services = services
    }

    public static let defaults = Thresholds(
        cpuPercent: 5, networkMb: 5, connections: 0, requests: 0, lookbackDays: 14, minMonthlySavings: 0, ageDays: 90)
    public static let standard = ScanPolicy()
    public static let overridable: Set<String> = ["ec2", "rds", "elbv2", "nat", "ebs", "lambda", "dynamodb", "elasticache", "redshift"]

    /// The thresholds that apply to a service (global, then its override), every field set.
    public func thresholds(for service: String) -> Thresholds {
        Self.defaults.merged(global).merged(services[service])
    }
}
