import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `scans.domains`: domains a workspace proved it controls (active web scans).
struct DomainStore: Sendable {
    let db: Store

    static func view(_ r: Row) throws -> DomainView {
        let domain = try r.string("domain")
        let token = try r.string("token")
        let bare = domain.split(separator: ":").first.map(String.init) ?? domain
        return DomainView(
            id: try r.string("id"), domain: domain, status: try r.string("status"), token: token,
            methods: [
                "file": ["url": "https://\(domain)\(DomainHandlers.wellKnownPath)", "content": token],
                "dns_txt": ["name": "_vigil-verification.\(bare)", "value": "vigil-verification=\(token)"],
            ], method: r.optionalString("method"), verifiedAt: r.optionalDate("verified_at"), lastCheckedAt: r.optionalDate("last_checked_at"),
            lastError: r.optionalString("last_error"), createdAt: try r.date("created_at"))
    }

    func insert(_ tx: Transaction, id: String, tenantId: String, domain: String, token: String, by actor: String) async throws -> DomainView {
        try Self.view(
            try await tx.single(
                "INSERT INTO scans.domains (id, tenant_id, domain, token, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *",
                [id, tenantId, domain, token, actor]))
    }

    func list(_ page: Pagination, tenantId: String) async throws -> Page<DomainView> {
        try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "scans.domains", filter: "tenant_id = $1", [tenantId], map: Self.view)
        }
    }

    func find(id: String, tenantId: String) async throws -> DomainView? {
        try await db.query(.tenant(tenantId), "SELECT * FROM scans.domains WHERE id = $1 AND tenant_id = $2", [id, tenantId]).first.map(Self.view)
    }

    /// Whether the workspace verified exactly this domain (`host` or `host:port`).
    func isVerified(domain: String, tenantId: String) async throws -> Bool {
        try await db.query(
            .tenant(tenantId), "SELECT 1 FROM scans.domains WHERE tenant_id = $1 AND domain = $2 AND status = 'verified'", [tenantId, domain]
        ).first != nil
    }

    func record(_ tx: Transaction, id: String, tenantId: String, verified: Bool, method: String, error: String?) async throws -> DomainView? {
        try await tx.one(
            """
            UPDATE scans.domains SET last_checked_at = now(), last_error = $4,
              status = CASE WHEN $3 THEN 'verified' ELSE status END, method = CASE WHEN $3 THEN $5 ELSE method END,
              verified_at = CASE WHEN $3 THEN now() ELSE verified_at END
            WHERE id = $1 AND tenant_id = $2 RETURNING *
            """, [id, tenantId, verified, error, method]
        ).map(Self.view)
    }

    func delete(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.execute("DELETE FROM scans.domains WHERE id = $1 AND tenant_id = $2", [id, tenantId]) == 1
    }
}
