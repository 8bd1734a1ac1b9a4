import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `identity.users` and `identity.login_failures`: accounts, their password hashes
/// (never returned to a caller) and the failed sign-ins that throttle guessing.
struct UserStore: Sendable {
    let db: Store

    static func view(_ r: Row, prefix: String = "") throws -> UserView {
        UserView(
            id: try r.string("\(prefix)id"), email: try r.string("\(prefix)email"),
            fullName: try r.string("\(prefix)full_name"), emailVerified: try r.bool("\(prefix)email_verified"),
            createdAt: r.optionalDate("\(prefix)created_at"))
    }

    /// Failed sign-ins in the last `window` seconds for the account and for the client address.
    func failures(email: String, address: String, window: Int) async throws -> (byEmail: Int, byAddress: Int) {
        let r = try await db.single(
            .none,
            """
            SELECT (SELECT count(*) FROM identity.login_failures WHERE email = $1 AND at > now() - make_interval(secs => $3)) AS by_email,
                   (SELECT count(*) FROM identity.login_failures WHERE address = $2 AND at > now() - make_interval(secs => $3)) AS by_address
            """, [email, address, window])
        return (try r.int("by_email"), try r.int("by_address"))
    }

    func recordFailure(email: String, address: String) async throws {
        try await db.query(.none, "INSERT INTO identity.login_failures (email, address) VALUES ($1, $2)", [email, address])
    }

    static func clearFailures(_ tx: Transaction, email: String) async throws {
        try await tx.execute("DELETE FROM identity.login_failures WHERE email = $1", [email])
    }

    /// The account with this email and its password hash, for signing in.
    func withPasswordHash(email: String) async throws -> (user: UserView, hash: String)? {
        guard
            let r = try await db.query(
                .none, "SELECT id, email, full_name, email_verified, created_at, password_hash FROM identity.users WHERE email = $1", [email]
            ).first
        else { return nil }
        return (try Self.view(r), try r.string("password_hash"))
    }

    func passwordHash(userId: String) async throws -> String? {
        try await db.query(.none, "SELECT password_hash FROM identity.users WHERE id = $1", [userId]).first?.string("password_hash")
    }

    func find(id: String) async throws -> UserView? {
        try await db.query(.none, "SELECT * FROM identity.users WHERE id = $1", [id]).first.map { try Self.view($0) }
    }

    static func find(_ tx: Transaction, id: String) async throws -> UserView? {
        try await tx.one("SELECT * FROM identity.users WHERE id = $1", [id]).map { try view($0) }
    }

    static func find(_ tx: Transaction, email: String) async throws -> UserView? {
        try await tx.one("SELECT * FROM identity.users WHERE email = $1", [email]).map { try view($0) }
    }

    /// Creates an account; a taken email is a unique violation the caller turns into 409.
    static func insert(
        _ tx: Transaction, id: String, email: String, passwordHash: String, fullName: String, verified: Bool
    ) async throws {
        try await tx.execute(
            "INSERT INTO identity.users (id, email, password_hash, full_name, email_verified) VALUES ($1, $2, $3, $4, $5)",
            [id, email, passwordHash, fullName, verified])
    }

    static func setPassword(_ tx: Transaction, userId: String, hash: String) async throws {
        try await tx.execute("UPDATE identity.users SET password_hash = $2, updated_at = now() WHERE id = $1", [userId, hash])
    }

    static func markVerified(_ tx: Transaction, userId: String) async throws {
        try await tx.execute("UPDATE identity.users SET email_verified = true, updated_at = now() WHERE id = $1", [userId])
    }

    static func updateProfile(_ tx: Transaction, userId: String, fullName: String?) async throws -> UserView? {
        try await tx.one(
            """
            UPDATE identity.users SET full_name = coalesce($2, full_name), updated_at = now() WHERE id = $1 RETURNING *
            """, [userId, fullName]
        ).map { try view($0) }
    }
}

/// Every statement on `identity.refresh_tokens` and `identity.user_tokens` (email verification and
/// password reset). Tokens are stored as hashes only.
enum TokenStore {
    static func insertRefresh(
        _ tx: Transaction, userId: String, familyId: String, hash: String, tenantId: String?, ttlSeconds: Int
    ) async throws {
        try await tx.execute(
            """
            INSERT INTO identity.refresh_tokens (id, user_id, family_id, token_hash, tenant_id, expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
            """, [ID.make(), userId, familyId, hash, tenantId, ttlSeconds])
    }

    /// Spends a live refresh token; nil when it is unknown, used, revoked or expired.
    static func spendRefresh(_ tx: Transaction, hash: String) async throws -> (userId: String, familyId: String, tenantId: String?)? {
        guard
            let row = try await tx.one(
                """
                UPDATE identity.refresh_tokens SET used_at = now()
                WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
                RETURNING user_id, family_id, tenant_id
                """, [hash])
        else { return nil }
        return (try row.string("user_id"), try row.string("family_id"), row.optionalString("tenant_id"))
    }

    /// Revokes the whole family of an already spent token (a replay means it leaked); returns rows revoked.
    static func revokeFamily(ofSpent hash: String, _ tx: Transaction) async throws -> Int {
        try await tx.execute(
            """
            UPDATE identity.refresh_tokens SET revoked_at = coalesce(revoked_at, now())
            WHERE family_id = (SELECT family_id FROM identity.refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)
            """, [hash])
    }

    /// Signs the user out everywhere, or of one workspace.
    static func revokeRefresh(_ tx: Transaction, userId: String, tenantId: String? = nil) async throws {
        if let tenantId {
            try await tx.execute(
                "UPDATE identity.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
                [userId, tenantId])
        } else {
            try await tx.execute("UPDATE identity.refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [userId])
        }
    }

    /// Stores a single-use token; a new reset token retires the earlier unused ones.
    static func insertUserToken(_ tx: Transaction, userId: String, kind: String, hash: String, ttlSeconds: Int) async throws {
        if kind == "reset" {
            try await tx.execute(
                "UPDATE identity.user_tokens SET used_at = now() WHERE user_id = $1 AND kind = 'reset' AND used_at IS NULL", [userId])
        }
        try await tx.execute(
            """
            INSERT INTO identity.user_tokens (id, user_id, kind, token_hash, expires_at)
            VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
            """, [ID.make(), userId, kind, hash, ttlSeconds])
    }

    /// Consumes a single-use token; its user, or nil when unknown, used or expired.
    static func consumeUserToken(_ tx: Transaction, hash: String, kind: String) async throws -> String? {
        try await tx.one(
            """
            UPDATE identity.user_tokens SET used_at = now()
            WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > now() RETURNING user_id
            """, [hash, kind])?.string("user_id")
    }
}
