import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `notifier.audit_log`: the append-only record of every domain event.
struct AuditStore: Sendable {
    let db: Store

    struct Entry {
        var id: String
        var tenantId: String?
        var occurredAt: String?
        var actor: String?
        var action: String
        var resourceType: String
        var resourceId: String?
        var correlationId: String?
        var ip: String?
        var userAgent: String?
        var changes: Data
    }

    /// Appends a record; the same event id twice is recorded once.
    func append(_ e: Entry) async throws {
        try await db.query(
            e.tenantId.map { .tenant($0) } ?? .crossTenant,
            """
            INSERT INTO notifier.audit_log (id, tenant_id, at, actor, action, resource_type, resource_id, correlation_id, ip, user_agent,
              changes)
            VALUES ($1, $2, coalesce($3::timestamptz, now()), $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
            ON CONFLICT (id) DO NOTHING
            """,
            [
                e.id, e.tenantId, e.occurredAt, e.actor, e.action, e.resourceType, e.resourceId, e.correlationId, e.ip, e.userAgent,
                JSONParameter(raw: e.changes),
            ])
    }

    /// A workspace's records, newest first, filtered by any of the query's fields.
    func list(_ page: Pagination, tenantId: String, _ q: AuditQuery) async throws -> Page<AuditRecord> {
        var filter = "tenant_id = $1"
        var values: [any SQLParameter] = [tenantId]
        func add(_ column: String, _ op: String, _ v: any SQLParameter) {
            values.append(v)
            filter += " AND \(column) \(op) $\(values.count)"
        }
        if let a = q.action { add("action", "=", a) }
        if let t = q.resourceType { add("resource_type", "=", t) }
        if let a = q.actor { add("actor", "=", a) }
        if let s = q.since { add("at", ">=", s) }
        if let u = q.until { add("at", "<", u) }
        return try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "notifier.audit_log", filter: filter, values) { r in
                AuditRecord(
                    id: try r.string("id"), at: try r.date("at"), actor: r.optionalString("actor"), action: try r.string("action"),
                    resourceType: try r.string("resource_type"), resourceId: r.optionalString("resource_id"),
                    workspace: r.optionalString("tenant_id"), correlationId: r.optionalString("correlation_id"),
                    ip: r.optionalString("ip"), userAgent: r.optionalString("user_agent"),
                    changes: JSONObject(raw: Data((r.optionalString("changes") ?? "{}").utf8)))
            }
        }
    }
}
