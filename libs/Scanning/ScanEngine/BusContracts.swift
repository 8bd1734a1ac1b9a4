import Foundation

/// `vigil.events.scan.results` data: one batch of a part's results (scan-orchestrator publishes,
/// findings consumes; contracts/schemas/event.scan.results.json).
public struct ScanResultsBatch: Codable, Sendable {
    public var scanId: String
    public var connectionId: String
    public var provider: String
    public var accountId: String
    public var service: String
    public var region: String
    public var batch: Int
    public var batches: Int
    public var results: [ScanResult]
    public init(
        scanId: String, connectionId: String, provider: String, accountId: String, service: String, region: String,
        batch: Int, batches: Int, results: [ScanResult]
    ) {
        self.scanId = scanId
        self.connectionId = connectionId
        self.provider = provider
        self.accountId = accountId
        self.service = service
        self.region = region
        self.batch = batch
        self.batches = batches
        self.results = results
    }
}

/// One service × region part of a scan, as progress and `vigil.events.scan.completed` report it.
public struct ScanPartReport: Codable, Sendable {
    public var service: String
    public var region: String
    public var status: String
    public var resources: Int
    public var checks: Int
    public var failures: Int
    public var error: String?
    public init(service: String, region: String, status: String, resources: Int, checks: Int, failures: Int, error: String?) {
        self.service = service
        self.region = region
        self.status = status
        self.resources = resources
        self.checks = checks
        self.failures = failures
        self.error = error
    }
}

/// Reply of `vigil.findings.rules.effective`: a workspace's enabled rules, overrides applied.
public struct EffectiveRules: Codable, Sendable {
    public var rules: [Rule]
    public init(rules: [Rule]) { self.rules = rules }
}
