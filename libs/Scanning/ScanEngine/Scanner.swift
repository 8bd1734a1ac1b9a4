import Foundation
import VigilCore
import VigilCrypto

public enum BuiltinRules {
    /// The built-in rules (contracts/rules/, embedded at build time).
    public static let all: [Rule] = {
        do { return try JSON.decode([Rule].self, from: Data(BuiltinRulesData.json.utf8)) } catch {
            fatalError("built-in rules do not decode: \(error)")
        }
    }()
}

/// One evaluated (rule, resource) pair with what the findings service needs.
public struct ScanResult: Codable, Sendable, Equatable {
    public var fingerprint: String
    public var ruleId: String
    public var status: String
    public var severity: Severity
    public var title: String
    public var resourceId: String
    public var resourceType: String
    public var resourceName: String
    public var region: String
    public var service: String
    public var evidence: [String: JSONValue]
    public var estimatedMonthlySavings: Double?
    public var tags: [String: String]?
}

/// What one part (a service in a region) produced.
public struct PartOutcome: Sendable {
    public var resources: [Resource]
    public var results: [ScanResult]
    public init(resources: [Resource], results: [ScanResult]) {
        self.resources = resources
        self.results = results
    }
}

public enum Scanner {
    /// Stable identity of a finding: the same rule failing on the same resource of the same connection.
    public static func fingerprint(tenantId: String, connectionId: String, ruleId: String, resourceId: String) -> String {
        let text = "\(tenantId)|\(connectionId)|\(ruleId)|\(resourceId)"
        return String(Sodium.hex(Sodium.sha256(Array(text.utf8))).prefix(40))
    }

    /// Evaluates every applicable rule on every resource.
    public static func evaluate(_ resources: [Resource], rules: [String: [Rule]], tenantId: String, connectionId: String) -> [ScanResult] {
        var out: [ScanResult] = []
        for r in resources {
            for rule in rules[r.type] ?? [] {
                guard let result = RuleEngine.evaluate(rule, r) else { continue }
                let failed = result.status == "FAIL"
                out.append(
                    ScanResult(
                        fingerprint: fingerprint(tenantId: tenantId, connectionId: connectionId, ruleId: rule.id, resourceId: r.id),
                        ruleId: rule.id, status: result.status, severity: rule.severity, title: rule.title, resourceId: r.id,
                        resourceType: r.type, resourceName: r.name, region: r.region, service: rule.service,
                        evidence: failed ? result.evidence : [:], estimatedMonthlySavings: failed ? rule.monthlySavings(for: r) : nil,
                        tags: failed && !r.tags.isEmpty ? r.tags : nil))
            }
        }
        return out
    }
}
