import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

let severityRank: [String: Int] = ["critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4]
let severityNames = ["critical", "high", "medium", "low", "info"]

/// The frameworks findings map to (ids are the keys of a rule's `compliance`).
struct Framework: Codable, Sendable {
    var id: String
    var name: String
    var version: String
    var description: String
}
let frameworks: [Framework] = [
    Framework(
        id: "cis_aws_3_0", name: "CIS Amazon Web Services Foundations Benchmark", version: "3.0.0",
        description: "Configuration baseline for AWS accounts: IAM, storage, logging, monitoring, networking."),
    Framework(
        id: "cis_debian_12", name: "CIS Debian Linux 12 Benchmark", version: "1.1.0",
        description: "Configuration baseline for Debian and Ubuntu hosts: SSH, accounts, file permissions, kernel, services."),
    Framework(id: "pci_dss_4_0", name: "PCI DSS", version: "4.0", description: "Payment Card Industry Data Security Standard."),
    Framework(
        id: "soc2", name: "SOC 2", version: "2017 TSC (rev. 2022)",
        description: "AICPA Trust Services Criteria: security, availability, confidentiality."),
    Framework(id: "iso27001_2022", name: "ISO/IEC 27001", version: "2022", description: "Annex A information security controls."),
    Framework(id: "nist_800_53", name: "NIST SP 800-53", version: "Rev. 5", description: "Security and privacy controls for information systems."),
]

/// Built-in rules plus a workspace's custom rules, with its overrides (enabled, severity) applied.
struct RuleCatalog: Sendable {
    let store: Store
    static let builtin: [Rule] = BuiltinRules.all
    static let builtinById: [String: Rule] = Dictionary(uniqueKeysWithValues: builtin.map { ($0.id, $0) })
    static let resourceTypes: Set<String> = Set(builtin.map(\.resourceType))

    /// Every rule visible to the workspace, effective values applied (disabled ones included, marked).
    func rules(_ tx: Transaction, tenantId: String) async throws -> [Rule] {
        let out = Self.builtin + (try await RuleStore.custom(tx, tenantId: tenantId))
        let overrides = try await RuleStore.overrides(tx, tenantId: tenantId)
        return out.map { r in
            var r = r
            if let (enabled, severity) = overrides[r.id] {
                if let enabled { r.enabled = enabled }
                if let s = severity.flatMap(Severity.init(rawValue:)) { r.severity = s }
            }
            if r.enabled == nil { r.enabled = true }
            return r
        }
    }

    func rulesById(_ tx: Transaction, tenantId: String) async throws -> [String: Rule] {
        Dictionary(try await rules(tx, tenantId: tenantId).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Rules by id as their findings are written (texts, compliance, fix action): built-in and custom rules
    /// without the workspace's overrides, which change only a rule's severity and whether it runs. A list
    /// page asks for it each time: without custom rules it is the built-in table as it is.
    func definitionsById(_ tx: Transaction, tenantId: String) async throws -> [String: Rule] {
        let custom = try await RuleStore.custom(tx, tenantId: tenantId)
        guard !custom.isEmpty else { return Self.builtinById }
        var all = Self.builtinById
        for r in custom where all[r.id] == nil { all[r.id] = r }
        return all
    }
}
