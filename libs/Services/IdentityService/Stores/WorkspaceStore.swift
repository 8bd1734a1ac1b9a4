import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `identity.workspaces` and `identity.memberships`: workspaces (and their MSP
/// children), their settings, and who belongs to which with what role.
struct WorkspaceStore: Sendable {
    let db: Store

    static let workspaceColumns =
        "w.id AS w_id, w.slug AS w_slug, w.name AS w_name, w.parent_id AS w_parent_id, w.settings AS w_settings, w.created_at AS w_created_at"

    static func view(_ r: Row, prefix: String = "") throws -> WorkspaceView {
        WorkspaceView(
            id: try r.string("\(prefix)id"), slug: try r.string("\(prefix)slug"), name: try r.string("\(prefix)name"),
            parentId: r.optionalString("\(prefix)parent_id"),
            settings: r.isNull("\(prefix)settings")
                ? nil
                : r.raw("\(prefix)settings") == "{}" ? [:] : try r.json("\(prefix)settings"),
            createdAt: r.optionalDate("\(prefix)created_at"))
    }

    static func role(_ r: Row, _ c: String = "role") throws -> Role {
        guard let role = Role(rawValue: try r.string(c)) else { throw StoreError.corrupt("role") }
        return role
    }

    static func member(_ r: Row) throws -> TeamMember {
        TeamMember(
            membershipId: try r.string("id"), userId: try r.string("user_id"), email: try r.string("email"),
            fullName: try r.string("full_name"), role: try role(r), joinedAt: try r.date("created_at"))
    }

    // MARK: workspaces

    static func slugTaken(_ tx: Transaction, _ slug: String) async throws -> Bool {
        try await tx.one("SELECT 1 FROM identity.workspaces WHERE slug = $1", [slug]) != nil
    }

    static func insert(_ tx: Transaction, id: String, slug: String, name: String, parentId: String?) async throws -> WorkspaceView {
        try view(
            try await tx.single(
                """
                INSERT INTO identity.workspaces (id, slug, name, parent_id) VALUES ($1, $2, $3, $4)
                RETURNING id, slug, name, parent_id, settings, created_at
                """, [id, slug, name, parentId]))
    }

    static func get(_ tx: Transaction, id: String) async throws -> WorkspaceView? {
        try await tx.one("SELECT * FROM identity.workspaces WHERE id = $1", [id]).map { try view($0) }
    }

    func get(_ scope: TenantScope, id: String) async throws -> WorkspaceView? {
        try await db.query(scope, "SELECT * FROM identity.workspaces WHERE id = $1", [id]).first.map { try Self.view($0) }
    }

    static func name(_ tx: Transaction, id: String) async throws -> String {
        try await tx.single("SELECT name FROM identity.workspaces WHERE id = $1", [id]).string("name")
    }

    static func isChild(_ tx: Transaction, id: String) async throws -> Bool {
        try await tx.one("SELECT 1 FROM identity.workspaces WHERE id = $1 AND parent_id IS NOT NULL", [id]) != nil
    }

    /// The id of the child workspace with this slug under `parentId`.
    static func child(_ tx: Transaction, slug: String, parentId: String) async throws -> String? {
        try await tx.one("SELECT id FROM identity.workspaces WHERE slug = $1 AND parent_id = $2", [slug, parentId])?.string("id")
    }

    static func children(_ tx: Transaction, _ page: Pagination, parentId: String) async throws -> Page<WorkspaceView> {
        try await page.list(tx, from: "identity.workspaces", filter: "parent_id = $1", [parentId]) { try view($0) }
    }

    static func rename(_ tx: Transaction, id: String, name: String?) async throws -> WorkspaceView? {
        try await tx.one(
            """
            UPDATE identity.workspaces SET name = coalesce($2, name), updated_at = now() WHERE id = $1 RETURNING *
            """, [id, name]
        ).map { try view($0) }
    }

    /// Merges a JSON object into the settings (keys kept exactly as sent).
    static func mergeSettings(_ tx: Transaction, id: String, patch: Data) async throws -> WorkspaceView? {
        try await tx.one(
            """
            UPDATE identity.workspaces SET settings = settings || $2::jsonb, updated_at = now() WHERE id = $1 RETURNING *
            """, [id, JSONParameter(raw: patch)]
        ).map { try view($0) }
    }

    // MARK: memberships

    static func addMember(_ tx: Transaction, id: String, tenantId: String, userId: String, role: Role) async throws {
        try await tx.execute(
            "INSERT INTO identity.memberships (id, tenant_id, user_id, role) VALUES ($1, $2, $3, $4)", [id, tenantId, userId, role.rawValue])
    }

    /// The user's first workspace (the one a sign-in lands in).
    static func firstWorkspace(_ tx: Transaction, userId: String) async throws -> WorkspaceView? {
        try await tx.one(
            """
            SELECT w.* FROM identity.memberships m JOIN identity.workspaces w ON w.id = m.tenant_id
            WHERE m.user_id = $1 ORDER BY m.created_at LIMIT 1
            """, [userId]
        ).map { try view($0) }
    }

    /// The workspace if the user is (still) a member of it.
    static func workspace(_ tx: Transaction, id: String, ofMember userId: String) async throws -> WorkspaceView? {
        try await tx.one(
            """
            SELECT w.* FROM identity.workspaces w JOIN identity.memberships m ON m.tenant_id = w.id
            WHERE w.id = $1 AND m.user_id = $2
            """, [id, userId]
        ).map { try view($0) }
    }

    /// Every workspace the user belongs to, with the role, oldest membership first.
    func memberships(userId: String) async throws -> [MembershipView] {
        try await db.query(
            .crossTenant,
            """
            SELECT m.role, \(Self.workspaceColumns) FROM identity.memberships m JOIN identity.workspaces w ON w.id = m.tenant_id
            WHERE m.user_id = $1 ORDER BY m.created_at
            """, [userId]
        ).map { MembershipView(workspace: try Self.view($0, prefix: "w_"), role: try Self.role($0)) }
    }

    struct Seat: Sendable {
        var tenantId: String
        var slug: String
        var role: Role
    }

    /// The same, reduced to what a principal needs.
    static func seats(_ tx: Transaction, userId: String) async throws -> [Seat] {
        try await tx.query(
            """
            SELECT m.tenant_id, m.role, w.slug FROM identity.memberships m JOIN identity.workspaces w ON w.id = m.tenant_id
            WHERE m.user_id = $1 ORDER BY m.created_at
            """, [userId]
        ).map { Seat(tenantId: try $0.string("tenant_id"), slug: try $0.string("slug"), role: try role($0)) }
    }

    static func team(_ tx: Transaction, _ page: Pagination, tenantId: String) async throws -> Page<TeamMember> {
        try await page.list(
            tx, columns: "m.id, m.user_id, m.role, m.created_at, u.email, u.full_name",
            from: "identity.memberships m JOIN identity.users u ON u.id = m.user_id",
            filter: "m.tenant_id = $1", [tenantId], alias: "m.", map: member)
    }

    /// A membership of the workspace, locked for a change.
    static func lockMember(_ tx: Transaction, id: String, tenantId: String) async throws -> TeamMember? {
        try await tx.one(
            """
            SELECT m.id, m.user_id, m.role, m.created_at, u.email, u.full_name FROM identity.memberships m
            JOIN identity.users u ON u.id = m.user_id WHERE m.id = $1 AND m.tenant_id = $2 FOR UPDATE OF m
            """, [id, tenantId]
        ).map { try member($0) }
    }

    static func owners(_ tx: Transaction, tenantId: String) async throws -> Int {
        try await tx.single("SELECT count(*) AS n FROM identity.memberships WHERE tenant_id = $1 AND role = 'owner'", [tenantId]).int("n")
    }

    static func setRole(_ tx: Transaction, membershipId: String, _ role: Role) async throws {
        try await tx.execute("UPDATE identity.memberships SET role = $2 WHERE id = $1", [membershipId, role.rawValue])
    }

    static func removeMember(_ tx: Transaction, membershipId: String) async throws {
        try await tx.execute("DELETE FROM identity.memberships WHERE id = $1", [membershipId])
    }

    static func hasMember(_ tx: Transaction, tenantId: String, email: String) async throws -> Bool {
        try await tx.one(
            """
            SELECT 1 FROM identity.memberships m JOIN identity.users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email = $2
            """, [tenantId, email]) != nil
    }
}

extension StoreError {
    static func corrupt(_ what: String) -> ServiceError { .internal("stored \(what) is invalid") }
}
