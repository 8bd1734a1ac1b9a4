import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

struct SuppressionRuleCreate: Codable, Sendable {
    var name: String?
    var connectionId: String?
    var rule: String?
    var region: String?
    var resource: String?
    var tags: [String: String]?
    var reason: String?
    var expiresAt: String?
}
struct SuppressionRuleView: Codable, Sendable {
    var id: String
    var name: String
    var connectionId: String?
    var rule: String?
    var region: String?
    var resource: String?
    var tags: [String: String]
    var reason: String
    var expiresAt: Date?
    var createdBy: String?
    var createdAt: Date
    var matched: Int?
}
struct SuppressionPath: Codable, Sendable { var suppressionId: String }

/// Suppression rules: match findings by connection, rule (glob), region, resource (regex) and tags;
/// matching findings are kept but marked suppressed (now and as new ones arrive) until the rule expires.
struct SuppressionHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog

    /// SQL matching finding `f` against suppression rule `s` (both in scope).
    static let matchSQL = """
        (s.expires_at IS NULL OR s.expires_at > now()) AND (s.connection_id IS NULL OR s.connection_id = f.connection_id)
        AND (s.rule_pattern IS NULL OR f.rule_id LIKE s.rule_pattern ESCAPE '\\') AND (s.region IS NULL OR s.region = f.region)
        AND (s.resource_regex IS NULL OR f.resource_id ~ s.resource_regex OR f.resource_name ~ s.resource_regex) AND f.tags @> s.tags
        """

    func register(on r: ServiceResponder) {
        r.add(Endpoint<SuppressionRuleCreate, SuppressionRuleView>(Subjects.Findings.suppressionCreate), handler: create)
        r.add(Endpoint<PageRequest, Page<SuppressionRuleView>>(Subjects.Findings.suppressionList)) { q, ctx in
            let p = try ctx.requirePrincipal()
            try p.require(atLeast: .viewer)
            let page = try Pagination(q)
            return try await store.transaction(p.scope) { tx in
                try await page.list(tx, from: "findings.suppression_rules", filter: "tenant_id = $1", [p.tenantId], map: Self.view)
            }
        }
        r.add(Endpoint<SuppressionPath, Empty>(Subjects.Findings.suppressionDelete)) { q, ctx in
            let p = try ctx.requirePrincipal()
            try p.require(atLeast: .admin)
            let id = try Validate.id(q.suppressionId, "suppression rule")
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                guard try await tx.execute("DELETE FROM findings.suppression_rules WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]) == 1 else {
                    throw ServiceError.notFound("suppression rule")
                }
                // Findings it suppressed come back.
                let rows = try await tx.query(
                    """
                    UPDATE findings.findings SET status = 'open', suppression_rule_id = NULL, status_reason = 'suppression rule deleted',
                      status_actor = $3, status_expires_at = NULL, updated_at = now()
                    WHERE tenant_id = $1 AND suppression_rule_id = $2 AND status = 'suppressed'
                    RETURNING id, connection_id, rule_id, severity, resource_id, title
                    """, [p.tenantId, id, p.actorId])
                try await Lifecycle.record(
                    tx, tenantId: p.tenantId,
                    try rows.map { row in
                        Transition(
                            findingId: try row.string("id"), connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
                            severity: try row.string("severity"), eventType: "reopened", from: "suppressed", to: "open", actor: p.actorId,
                            reason: "suppression rule deleted", scanId: nil, resourceId: try row.string("resource_id"), title: try row.string("title")
                        )
                    })
                return Empty()
            }
        }
    }

    static func view(_ r: Row) throws -> SuppressionRuleView {
        SuppressionRuleView(
            id: try r.string("id"), name: try r.string("name"), connectionId: r.optionalString("connection_id"),
            rule: r.optionalString("rule_glob"), region: r.optionalString("region"), resource: r.optionalString("resource_regex"),
            tags: try r.json("tags"), reason: try r.string("reason"), expiresAt: r.optionalDate("expires_at"),
            createdBy: r.optionalString("created_by"), createdAt: try r.date("created_at"), matched: r.optionalInt("matched"))
    }

    /// A glob (`aws.s3.*`, `?`) as a LIKE pattern.
    static func like(_ glob: String) -> String {
        var out = ""
        for ch in glob {
            switch ch {
            case "*": out += "%"
            case "?": out += "_"
            case "%", "_", "\\": out += "\\" + String(ch)
            default: out.append(ch)
            }
        }
        return out
    }

    @Sendable func create(_ q: SuppressionRuleCreate, _ ctx: CallContext) async throws -> SuppressionRuleView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        var issues: [ValidationIssue] = []
        let name = (try? Validate.text(q.name ?? "", path: "body.name", max: 200)) ?? ""
        if name.isEmpty { issues.append(.init(path: "body.name", message: "must be 1 to 200 characters")) }
        let reason = (try? Validate.text(q.reason ?? "", path: "body.reason", min: 3, max: 1000)) ?? ""
        if reason.isEmpty { issues.append(.init(path: "body.reason", message: "must be 3 to 1000 characters")) }
        if let c = q.connectionId, !ID.isValid(c) { issues.append(.init(path: "body.connection_id", message: "must be a UUID")) }
        if let g = q.rule, g.isEmpty || g.count > 200 {
            issues.append(.init(path: "body.rule", message: "must be a rule id or glob, 1 to 200 characters"))
        }
        if let re = q.resource, re.isEmpty || re.count > 500 || (try? NSRegularExpression(pattern: re)) == nil {
            issues.append(.init(path: "body.resource", message: "must be a valid regular expression"))
        }
        if let t = q.tags, t.count > 20 { issues.append(.init(path: "body.tags", message: "at most 20 tags")) }
        var expires: Date? = nil
        if let e = q.expiresAt {
            if let d = Timestamp.parse(e), d > Date() {
                expires = d
            } else {
                issues.append(.init(path: "body.expires_at", message: "must be a future ISO 8601 date-time"))
            }
        }
        if q.connectionId == nil && q.rule == nil && q.region == nil && q.resource == nil && (q.tags ?? [:]).isEmpty {
            issues.append(.init(path: "body", message: "give at least one of connection_id, rule, region, resource, tags"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let id = ID.make()
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            do {
                _ = try await tx.query(
                    """
                    INSERT INTO findings.suppression_rules (id, tenant_id, name, connection_id, rule_pattern, rule_glob, region, resource_regex,
                      tags, reason, expires_at, created_by)
                    VALUES ($1, $2, $3, $4, $5, $12, $6, $7, $8::jsonb, $9, $10, $11)
                    """,
                    [
                        id, p.tenantId, name, q.connectionId?.lowercased(), q.rule.map(Self.like), q.region, q.resource,
                        try JSONParameter(q.tags ?? [:]), reason, expires, p.actorId, q.rule,
                    ])
            }
            // Existing open findings that match are suppressed now.
            let rows = try await tx.query(
                """
                UPDATE findings.findings f SET status = 'suppressed', suppression_rule_id = s.id, status_reason = s.reason,
                  status_actor = 'suppression-rule:' || s.id, status_expires_at = s.expires_at, updated_at = now()
                FROM findings.suppression_rules s
                WHERE f.tenant_id = $1 AND s.id = $2 AND f.status = 'open' AND \(Self.matchSQL)
                RETURNING f.id, f.connection_id, f.rule_id, f.severity, f.resource_id, f.title
                """, [p.tenantId, id])
            try await Lifecycle.record(
                tx, tenantId: p.tenantId,
                try rows.map { row in
                    Transition(
                        findingId: try row.string("id"), connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
                        severity: try row.string("severity"), eventType: "suppressed", from: "open", to: "suppressed",
                        actor: "suppression-rule:" + id, reason: reason, scanId: nil, resourceId: try row.string("resource_id"),
                        title: try row.string("title"))
                })
            let row = try await tx.one(
                "SELECT *, $3::int AS matched FROM findings.suppression_rules WHERE id = $1 AND tenant_id = $2",
                [id, p.tenantId, rows.count])!
            return try Self.view(row)
        }
    }
}
