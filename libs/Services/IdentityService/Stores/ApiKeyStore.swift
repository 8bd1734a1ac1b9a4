import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `identity.api_keys`: keys stored as hashes with a display prefix, their scopes
/// and role, last use, expiry and revocation.
enum ApiKeyStore {
    static func view(_ r: Row) throws -> ApiKeyView {
        ApiKeyView(
            id: try r.string("id"), name: try r.string("name"), prefix: try r.string("prefix"), scopes: try r.stringArray("scopes"),
            role: try WorkspaceStore.role(r), createdAt: try r.date("created_at"), expiresAt: r.optionalDate("expires_at"),
            lastUsedAt: r.optionalDate("last_used_at"), key: nil)
    }

    /// A live key found by its hash, with its workspace's slug.
    struct Live: Sendable {
        var id: String
        var tenantId: String
        var slug: String
        var role: Role
        var scopes: [String]
        var lastUsedAt: Date?
    }

    static func live(_ tx: Transaction, hash: String) async throws -> Live? {
        guard
            let r = try await tx.one(
                """
                SELECT k.id, k.tenant_id, k.role, k.scopes, k.last_used_at, w.slug FROM identity.api_keys k
                JOIN identity.workspaces w ON w.id = k.tenant_id
                WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
                """, [hash])
        else { return nil }
        return Live(
            id: try r.string("id"), tenantId: try r.string("tenant_id"), slug: try r.string("slug"), role: try WorkspaceStore.role(r),
            scopes: try r.stringArray("scopes"), lastUsedAt: r.optionalDate("last_used_at"))
    }

    static func touch(_ tx: Transaction, id: String) async throws {
        try await tx.execute("UPDATE identity.api_keys SET last_used_at = now() WHERE id = $1", [id])
    }

    struct New: Sendable {
        var name: String
        var hash: String
        var prefix: String
        var scopes: [String]
        var role: Role
        var createdBy: String?
        var expiresAt: Date?
    }

    static func insert(_ tx: Transaction, tenantId: String, _ k: New) async throws -> ApiKeyView {
        try view(
            try await tx.single(
                """
                INSERT INTO identity.api_keys (id, tenant_id, name, key_hash, prefix, scopes, role, created_by, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6::text[], $7, $8, $9) RETURNING *
                """, [ID.make(), tenantId, k.name, k.hash, k.prefix, k.scopes, k.role.rawValue, k.createdBy, k.expiresAt]))
    }

    static func list(_ tx: Transaction, _ page: Pagination, tenantId: String) async throws -> Page<ApiKeyView> {
        try await page.list(tx, from: "identity.api_keys", filter: "tenant_id = $1 AND revoked_at IS NULL", [tenantId], map: view)
    }

    static func revoke(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.execute(
            "UPDATE identity.api_keys SET revoked_at = now() WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL", [id, tenantId]) == 1
    }
}
