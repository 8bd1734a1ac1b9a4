import Contracts
import Foundation
import ScanEngine
import Store
import VigilCore

/// Every statement on `scans.scan_policies`: one row per workspace that changed the thresholds.
struct ScanPolicyStore: Sendable {
    let db: Store

    struct Stored: Sendable {
        var policy: ScanPolicy
        var updatedBy: String?
        var updatedAt: Date?
    }

    static func load(_ tx: Transaction, tenantId: String) async throws -> Stored {
        guard let r = try await tx.one("SELECT * FROM scans.scan_policies WHERE tenant_id = $1", [tenantId]) else {
            return Stored(policy: .standard, updatedBy: nil, updatedAt: nil)
        }
        return Stored(policy: try r.json("policy"), updatedBy: r.optionalString("updated_by"), updatedAt: r.optionalDate("updated_at"))
    }

    func load(tenantId: String) async throws -> ScanPolicy {
        try await db.transaction(.tenant(tenantId)) { try await Self.load($0, tenantId: tenantId).policy }
    }

    static func save(_ tx: Transaction, tenantId: String, _ p: ScanPolicy, by actor: String) async throws {
        try await tx.execute(
            """
            INSERT INTO scans.scan_policies (tenant_id, policy, updated_by) VALUES ($1, $2::jsonb, $3)
            ON CONFLICT (tenant_id) DO UPDATE SET policy = $2::jsonb, updated_by = $3, updated_at = now()
            """, [tenantId, try JSONParameter(p), actor])
    }
}
