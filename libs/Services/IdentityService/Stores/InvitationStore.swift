import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `identity.invitations`: pending invitations (token stored hashed), their renewal,
/// acceptance and revocation, and the seat count they take part in.
enum InvitationStore {
    static func view(_ r: Row) throws -> InvitationView {
        var status = try r.string("status")
        let expires = try r.date("expires_at")
        if status == "pending" && expires < Date() { status = "expired" }
        return InvitationView(
            id: try r.string("id"), email: try r.string("email"), role: try WorkspaceStore.role(r), status: status,
            invitedBy: r.optionalString("invited_by"), expiresAt: expires, createdAt: try r.date("created_at"),
            acceptedAt: r.optionalDate("accepted_at"))
    }

    /// A pending invitation found by its token, with the workspace it is for.
    struct Pending: Sendable {
        var id: String
        var email: String
        var tenantId: String
        var role: Role
        var status: String
        var expiresAt: Date
        var workspace: WorkspaceView
    }

    static func byToken(_ tx: Transaction, hash: String, lock: Bool) async throws -> Pending? {
        guard
            let r = try await tx.one(
                """
                SELECT i.*, \(WorkspaceStore.workspaceColumns) FROM identity.invitations i JOIN identity.workspaces w ON w.id = i.tenant_id
                WHERE i.token_hash = $1\(lock ? " FOR UPDATE OF i" : "")
                """, [hash])
        else { return nil }
        return Pending(
            id: try r.string("id"), email: try r.string("email"), tenantId: try r.string("tenant_id"), role: try WorkspaceStore.role(r),
            status: try r.string("status"), expiresAt: try r.date("expires_at"), workspace: try WorkspaceStore.view(r, prefix: "w_"))
    }

    /// Marks the email's lapsed pending invitation expired, so a new one may be sent.
    static func expireLapsed(_ tx: Transaction, tenantId: String, email: String) async throws {
        try await tx.execute(
            "UPDATE identity.invitations SET status = 'expired' WHERE tenant_id = $1 AND email = $2 AND status = 'pending' AND expires_at < now()",
            [tenantId, email])
    }

    /// Seats in use (members plus live pending invitations), counted under a per-workspace lock held
    /// until the transaction ends, so two invitations cannot both take the last seat.
    static func lockSeats(_ tx: Transaction, tenantId: String) async throws -> Int {
        _ = try await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["seats:" + tenantId])
        return try await tx.single(
            """
            SELECT (SELECT count(*) FROM identity.memberships WHERE tenant_id = $1)
                 + (SELECT count(*) FROM identity.invitations WHERE tenant_id = $1 AND status = 'pending' AND expires_at > now()) AS n
            """, [tenantId]
        ).int("n")
    }

    static func insert(
        _ tx: Transaction, tenantId: String, email: String, role: Role, tokenHash: String, invitedBy: String?
    ) async throws -> InvitationView {
        try view(
            try await tx.single(
                """
                INSERT INTO identity.invitations (id, tenant_id, email, role, token_hash, invited_by, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, now() + interval '7 days') RETURNING *
                """, [ID.make(), tenantId, email, role.rawValue, tokenHash, invitedBy]))
    }

    static func list(_ tx: Transaction, _ page: Pagination, tenantId: String) async throws -> Page<InvitationView> {
        try await page.list(tx, from: "identity.invitations", filter: "tenant_id = $1", [tenantId], map: view)
    }

    /// The workspace's invitation locked for a change, with its stored status.
    static func lock(_ tx: Transaction, id: String, tenantId: String) async throws -> (status: String, view: InvitationView)? {
        guard let r = try await tx.one("SELECT * FROM identity.invitations WHERE id = $1 AND tenant_id = $2 FOR UPDATE", [id, tenantId]) else {
            return nil
        }
        return (try r.string("status"), try view(r))
    }

    /// A new token and seven more days.
    static func renew(_ tx: Transaction, id: String, tokenHash: String) async throws -> InvitationView {
        try view(
            try await tx.single(
                """
                UPDATE identity.invitations SET token_hash = $2, expires_at = now() + interval '7 days' WHERE id = $1 RETURNING *
                """, [id, tokenHash]))
    }

    static func markAccepted(_ tx: Transaction, id: String) async throws {
        try await tx.execute("UPDATE identity.invitations SET status = 'accepted', accepted_at = now() WHERE id = $1", [id])
    }

    static func exists(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.one("SELECT 1 FROM identity.invitations WHERE id = $1 AND tenant_id = $2", [id, tenantId]) != nil
    }

    static func revoke(_ tx: Transaction, id: String) async throws {
        try await tx.execute("UPDATE identity.invitations SET status = 'revoked' WHERE id = $1 AND status = 'pending'", [id])
    }
}
