import Contracts
import Foundation
import Store
import VigilCore

/// Every statement on `remediation.credentials`: a connection's write credentials, sealed to the
/// remediation key, with the masked form and the identity STS reported.
struct CredentialStore: Sendable {
    let db: Store

    struct Sealed: Sendable {
        var connectionId: String
        var sealed: Data
        var keyId: String
        var masked: [String: String]
        var accountId: String?
        var arn: String?
        var createdBy: String
    }

    /// Stores (or replaces) the connection's credentials; returns when they were stored.
    static func upsert(_ tx: Transaction, tenantId: String, _ c: Sealed) async throws -> Date? {
        try await tx.single(
            """
            INSERT INTO remediation.credentials (tenant_id, connection_id, sealed, key_id, masked, account_id, arn, created_by)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)
            ON CONFLICT (tenant_id, connection_id) DO UPDATE SET sealed = $3, key_id = $4, masked = $5::jsonb, account_id = $6, arn = $7,
              created_by = $8, created_at = now()
            RETURNING created_at
            """, [tenantId, c.connectionId, c.sealed, c.keyId, try JSONParameter(c.masked), c.accountId, c.arn, c.createdBy]
        ).optionalDate("created_at")
    }

    static func delete(_ tx: Transaction, tenantId: String, connectionId: String) async throws -> Bool {
        try await tx.execute("DELETE FROM remediation.credentials WHERE tenant_id = $1 AND connection_id = $2", [tenantId, connectionId]) == 1
    }

    /// The sealed credentials of a connection, nil when it has none.
    func sealed(tenantId: String, connectionId: String) async throws -> Data? {
        try await db.query(
            .tenant(tenantId), "SELECT sealed FROM remediation.credentials WHERE tenant_id = $1 AND connection_id = $2", [tenantId, connectionId]
        ).first?.bytes("sealed")
    }
}
