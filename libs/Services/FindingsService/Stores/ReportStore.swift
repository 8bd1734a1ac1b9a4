import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `findings.reports` and the finding reads a report is built from.
struct ReportStore: Sendable {
    let db: Store

    static let columns = "id, type, format, title, status, size, content_type, created_at, completed_at, parameters"

    /// The workspace's report, with its content when asked for.
    func load(id: String, tenantId: String, content: Bool) async throws -> Row? {
        try await db.query(
            .tenant(tenantId),
            "SELECT \(Self.columns)\(content ? ", content" : "") FROM findings.reports WHERE id = $1 AND tenant_id = $2", [id, tenantId]
        ).first
    }

    /// The workspace's reports, newest first, optionally of one type.
    func list<T>(_ page: Pagination, tenantId: String, type: String?, map: @escaping (Row) throws -> T) async throws -> Page<T> {
        try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(
                tx, columns: Self.columns, from: "findings.reports", filter: type == nil ? "tenant_id = $1" : "tenant_id = $1 AND type = $2",
                type.map { [tenantId, $0] } ?? [tenantId], map: map)
        }
    }

    struct New: Sendable {
        var id: String
        var type: String
        var format: String
        var title: String
        var parameters: [String: JSONValue]
        var content: Data
        var contentType: String
        var createdBy: String
    }

    static func insert(_ tx: Transaction, tenantId: String, _ r: New) async throws -> Row {
        try await tx.single(
            """
            INSERT INTO findings.reports (id, tenant_id, type, format, title, parameters, status, content, content_type, size, created_by,
              completed_at)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'completed', $7, $8, $9, $10, now())
            RETURNING \(columns)
            """, [r.id, tenantId, r.type, r.format, r.title, try JSONParameter(r.parameters), r.content, r.contentType, r.content.count, r.createdBy])
    }

    /// Up to 100,000 findings under the filter, most severe first.
    static func findings(_ tx: Transaction, _ f: Filter) async throws -> [Row] {
        try await tx.query("SELECT * FROM findings.findings WHERE \(f.sql) ORDER BY severity_rank, created_at LIMIT 100000", f.values)
    }

    /// Findings per severity and status, with the open findings' monthly savings.
    static func totals(_ tx: Transaction, tenantId: String) async throws -> [(severity: String, status: String, count: Int, savings: Double)] {
        try await tx.query(
            """
            SELECT severity, status, count(*)::int AS n, coalesce(sum(savings) FILTER (WHERE status = 'open'), 0)::float8 AS s
            FROM findings.findings WHERE tenant_id = $1 GROUP BY 1, 2
            """, [tenantId]
        ).map { (try $0.string("severity"), try $0.string("status"), try $0.int("n"), Double($0.optionalString("s") ?? "0") ?? 0) }
    }

    /// Open findings' monthly savings per service, largest first.
    static func savingsByService(_ tx: Transaction, tenantId: String) async throws -> [(service: String, usd: Double)] {
        try await tx.query(
            """
            SELECT service, sum(savings)::float8 AS usd FROM findings.findings WHERE tenant_id = $1 AND status = 'open' AND savings > 0
            GROUP BY 1 ORDER BY 2 DESC
            """, [tenantId]
        ).map { (try $0.string("service"), Double($0.optionalString("usd") ?? "0") ?? 0) }
    }

    /// The ten open findings that save the most: rule, resource, region, USD a month.
    static func topSavings(_ tx: Transaction, tenantId: String) async throws -> [[String]] {
        try await tx.query(
            """
            SELECT title, resource_name, region, savings::float8 AS usd FROM findings.findings
            WHERE tenant_id = $1 AND status = 'open' AND savings > 0 ORDER BY savings DESC, id LIMIT 10
            """, [tenantId]
        ).map {
            [
                try $0.string("title"), try $0.string("resource_name"), try $0.string("region"),
                String(format: "%.2f", Double($0.optionalString("usd") ?? "0") ?? 0),
            ]
        }
    }

    /// The ten most severe open findings, oldest first: severity, title, resource name, region.
    static func topRisks(_ tx: Transaction, tenantId: String) async throws -> [[String]] {
        try await tx.query(
            """
            SELECT title, severity, resource_name, region FROM findings.findings WHERE tenant_id = $1 AND status = 'open'
            ORDER BY severity_rank, first_seen_at LIMIT 10
            """, [tenantId]
        ).map { [try $0.string("severity"), try $0.string("title"), try $0.string("resource_name"), try $0.string("region")] }
    }
}
