import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `findings.suppression_rules` and the finding updates they cause: a new rule
/// suppresses the open findings it matches, a deleted one returns them to `open`. Ingestion matches new
/// findings with `matchSQL`.
enum SuppressionStore {
    /// SQL matching finding `f` against suppression rule `s` (both in scope).
    static let matchSQL = """
        (s.expires_at IS NULL OR s.expires_at > now()) AND (s.connection_id IS NULL OR s.connection_id = f.connection_id)
        AND (s.rule_pattern IS NULL OR f.rule_id LIKE s.rule_pattern ESCAPE '\\') AND (s.region IS NULL OR s.region = f.region)
        AND (s.resource_regex IS NULL OR f.resource_id ~ s.resource_regex OR f.resource_name ~ s.resource_regex) AND f.tags @> s.tags
        """

    static func view(_ r: Row) throws -> SuppressionRuleView {
        SuppressionRuleView(
            id: try r.string("id"), name: try r.string("name"), connectionId: r.optionalString("connection_id"),
            rule: r.optionalString("rule_glob"), region: r.optionalString("region"), resource: r.optionalString("resource_regex"),
            tags: try r.json("tags"), reason: try r.string("reason"), expiresAt: r.optionalDate("expires_at"),
            createdBy: r.optionalString("created_by"), createdAt: try r.date("created_at"), matched: r.optionalInt("matched"))
    }

    /// A finding a rule change moved, as the transition it makes.
    static func transition(_ row: Row, event: String, from: String, to: String, actor: String, reason: String) throws -> Transition {
        Transition(
            findingId: try row.string("id"), connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
            severity: try row.string("severity"), eventType: event, from: from, to: to, actor: actor, reason: reason, scanId: nil,
            resourceId: try row.string("resource_id"), title: try row.string("title"))
    }

    static func list(_ tx: Transaction, _ page: Pagination, tenantId: String) async throws -> Page<SuppressionRuleView> {
        try await page.list(tx, from: "findings.suppression_rules", filter: "tenant_id = $1", [tenantId], map: view)
    }

    struct New: Sendable {
        var id: String
        var name: String
        var connectionId: String?
        /// The glob as given and as a LIKE pattern.
        var glob: String?
        var pattern: String?
        var region: String?
        var resourceRegex: String?
        var tags: [String: String]
        var reason: String
        var expiresAt: Date?
        var createdBy: String
    }

    /// Stores the rule and suppresses the open findings it matches; returns the rule and those transitions.
    static func insert(_ tx: Transaction, tenantId: String, _ n: New) async throws -> (SuppressionRuleView, [Transition]) {
        _ = try await tx.query(
            """
            INSERT INTO findings.suppression_rules (id, tenant_id, name, connection_id, rule_pattern, rule_glob, region, resource_regex,
              tags, reason, expires_at, created_by)
            VALUES ($1, $2, $3, $4, $5, $12, $6, $7, $8::jsonb, $9, $10, $11)
            """,
            [
                n.id, tenantId, n.name, n.connectionId, n.pattern, n.region, n.resourceRegex, try JSONParameter(n.tags), n.reason, n.expiresAt,
                n.createdBy, n.glob,
            ])
        let rows = try await tx.query(
            """
            UPDATE findings.findings f SET status = 'suppressed', suppression_rule_id = s.id, status_reason = s.reason,
              status_actor = 'suppression-rule:' || s.id, status_expires_at = s.expires_at, updated_at = now()
            FROM findings.suppression_rules s
            WHERE f.tenant_id = $1 AND s.id = $2 AND f.status = 'open' AND \(matchSQL)
            RETURNING f.id, f.connection_id, f.rule_id, f.severity, f.resource_id, f.title
            """, [tenantId, n.id])
        let moved = try rows.map {
            try transition($0, event: "suppressed", from: "open", to: "suppressed", actor: "suppression-rule:" + n.id, reason: n.reason)
        }
        let rule = try await tx.single(
            "SELECT *, $3::int AS matched FROM findings.suppression_rules WHERE id = $1 AND tenant_id = $2", [n.id, tenantId, rows.count])
        return (try view(rule), moved)
    }

    /// Deletes the rule and reopens what it suppressed; nil when there is no such rule.
    static func delete(_ tx: Transaction, id: String, tenantId: String, actor: String) async throws -> [Transition]? {
        guard try await tx.execute("DELETE FROM findings.suppression_rules WHERE id = $1 AND tenant_id = $2", [id, tenantId]) == 1 else {
            return nil
        }
        let rows = try await tx.query(
            """
            UPDATE findings.findings SET status = 'open', suppression_rule_id = NULL, status_reason = 'suppression rule deleted',
              status_actor = $3, status_expires_at = NULL, updated_at = now()
            WHERE tenant_id = $1 AND suppression_rule_id = $2 AND status = 'suppressed'
            RETURNING id, connection_id, rule_id, severity, resource_id, title
            """, [tenantId, id, actor])
        return try rows.map {
            try transition($0, event: "reopened", from: "suppressed", to: "open", actor: actor, reason: "suppression rule deleted")
        }
    }
}
