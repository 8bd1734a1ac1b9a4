import Contracts
import Foundation
import ScanEngine
import Store
import VigilCore

/// Every statement on `findings.rules` (a workspace's custom rules, stored as their definition) and
/// `findings.rule_overrides` (enabled and severity set on any rule).
enum RuleStore {
    static func custom(_ tx: Transaction, tenantId: String) async throws -> [Rule] {
        try await tx.query("SELECT definition FROM findings.rules WHERE tenant_id = $1 ORDER BY id", [tenantId]).map { try $0.json("definition") }
    }

    static func overrides(_ tx: Transaction, tenantId: String) async throws -> [String: (enabled: Bool?, severity: String?)] {
        var out: [String: (Bool?, String?)] = [:]
        for row in try await tx.query("SELECT rule_id, enabled, severity FROM findings.rule_overrides WHERE tenant_id = $1", [tenantId]) {
            out[try row.string("rule_id")] = (row.isNull("enabled") ? nil : try row.bool("enabled"), row.optionalString("severity"))
        }
        return out
    }

    /// Stores a custom rule; false when the workspace already has one with this id.
    static func insert(_ tx: Transaction, tenantId: String, _ rule: Rule, by actor: String) async throws -> Bool {
        try await tx.one(
            """
            INSERT INTO findings.rules (tenant_id, id, definition, created_by) VALUES ($1, $2, $3::jsonb, $4)
            ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id
            """, [tenantId, rule.id, try JSONParameter(rule), actor]) != nil
    }

    /// Sets what is given (enabled, severity) and keeps the rest of an earlier override.
    static func override(_ tx: Transaction, tenantId: String, ruleId: String, enabled: Bool?, severity: String?, by actor: String) async throws {
        _ = try await tx.query(
            """
            INSERT INTO findings.rule_overrides (tenant_id, rule_id, enabled, severity, updated_by) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id, rule_id) DO UPDATE SET enabled = coalesce(excluded.enabled, rule_overrides.enabled),
              severity = coalesce(excluded.severity, rule_overrides.severity), updated_by = excluded.updated_by, updated_at = now()
            """, [tenantId, ruleId, enabled, severity, actor])
    }
}
