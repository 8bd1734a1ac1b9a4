import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `scans.proxies`: the workspace's outbound proxy profiles. The password is sealed
/// like connection credentials (under the profile's id) and never leaves the service.
struct ProxyStore: Sendable {
    let db: Store

    struct Stored: Sendable {
        var view: ProxyView
        var sealedPassword: Data?
    }

    static func view(_ r: Row) throws -> ProxyView {
        ProxyView(
            id: try r.string("id"), name: try r.string("name"), url: try r.string("url"), username: r.optionalString("username"),
            hasPassword: r.optionalString("password_key_id") != nil, createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"),
            lastTestedAt: r.optionalDate("last_tested_at"), lastTestOk: r.optionalString("last_test_ok").map { $0 == "t" },
            lastError: r.optionalString("last_error"))
    }

    static func stored(_ r: Row) throws -> Stored {
        Stored(view: try view(r), sealedPassword: r.optionalString("password_key_id") == nil ? nil : try r.bytes("password_sealed"))
    }

    struct Fields: Sendable {
        var name: String?
        var url: String?
        /// `.some(nil)` clears the username (and with it the password).
        var username: String??
        var sealedPassword: Data??
        var keyId: String
    }

    func insert(_ tx: Transaction, id: String, tenantId: String, _ f: Fields, by actor: String) async throws -> ProxyView {
        let sealed = f.sealedPassword ?? nil
        return try Self.view(
            try await tx.single(
                """
                INSERT INTO scans.proxies (id, tenant_id, name, url, username, password_sealed, password_key_id, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *
                """, [id, tenantId, f.name, f.url, f.username ?? nil, sealed, sealed == nil ? nil : f.keyId, actor]))
    }

    /// Applies the given fields; nil when the profile is not in the workspace.
    func update(_ tx: Transaction, id: String, tenantId: String, _ f: Fields) async throws -> ProxyView? {
        let setUser = f.username != nil
        let setPassword = f.sealedPassword != nil
        let sealed = f.sealedPassword ?? nil
        return try await tx.one(
            """
            UPDATE scans.proxies SET name = coalesce($3, name), url = coalesce($4, url),
              username = CASE WHEN $5 THEN $6 ELSE username END,
              password_sealed = CASE WHEN $7 THEN $8 ELSE password_sealed END,
              password_key_id = CASE WHEN $7 THEN (CASE WHEN $8::bytea IS NULL THEN NULL ELSE $9 END) ELSE password_key_id END,
              last_tested_at = NULL, last_test_ok = NULL, last_error = NULL, updated_at = now()
            WHERE id = $1 AND tenant_id = $2 RETURNING *
            """, [id, tenantId, f.name, f.url, setUser, f.username ?? nil, setPassword, sealed, f.keyId]
        ).map(Self.view)
    }

    func list(_ page: Pagination, tenantId: String) async throws -> Page<ProxyView> {
        try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "scans.proxies", filter: "tenant_id = $1", [tenantId], map: Self.view)
        }
    }

    func find(id: String, tenantId: String) async throws -> Stored? {
        try await db.query(.tenant(tenantId), "SELECT * FROM scans.proxies WHERE id = $1 AND tenant_id = $2", [id, tenantId]).first
            .map(Self.stored)
    }

    /// The connections that name the profile (a profile in use cannot be deleted).
    func users(_ tx: Transaction, id: String, tenantId: String) async throws -> [String] {
        try await tx.query(
            "SELECT id FROM scans.connections WHERE tenant_id = $1 AND settings->>'proxy_id' = $2 ORDER BY created_at, id", [tenantId, id]
        ).map { try $0.string("id") }
    }

    func delete(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.execute("DELETE FROM scans.proxies WHERE id = $1 AND tenant_id = $2", [id, tenantId]) == 1
    }

    func recordTest(id: String, tenantId: String, ok: Bool, error: String?) async throws {
        try await db.query(
            .tenant(tenantId),
            "UPDATE scans.proxies SET last_tested_at = now(), last_test_ok = $3, last_error = $4 WHERE id = $1 AND tenant_id = $2",
            [id, tenantId, ok, error])
    }
}
