import Contracts
import Foundation
import ScanEngine
import Store
import VigilCore

/// Every statement on `scans.resources`: the latest inventory of each connection, one row per resource.
struct InventoryStore: Sendable {
    /// Inserts or refreshes the resources a part collected.
    func upsert(_ tx: Transaction, tenantId: String, connectionId: String, scanId: String, _ resources: [Resource]) async throws {
        guard !resources.isEmpty else { return }
        _ = try await tx.query(
            """
            INSERT INTO scans.resources (tenant_id, connection_id, resource_id, type, service, region, name, tags, attributes,
              last_scan_id, updated_at)
            SELECT $1, $2, x.id, x.type, x.service, x.region, x.name, coalesce(x.tags, '{}'::jsonb), x.attributes, $3, now()
            FROM jsonb_to_recordset($4::jsonb) AS x(id text, type text, service text, region text, name text, tags jsonb,
              attributes jsonb)
            ON CONFLICT (tenant_id, connection_id, resource_id) DO UPDATE SET type = excluded.type, service = excluded.service,
              region = excluded.region, name = excluded.name, tags = excluded.tags, attributes = excluded.attributes,
              last_scan_id = excluded.last_scan_id, updated_at = now()
            """, [tenantId, connectionId, scanId, try JSONParameter(resources)])
    }

    /// Forgets a connection's inventory (the connection was deleted).
    func deleteAll(_ tx: Transaction, tenantId: String, connectionId: String) async throws {
        _ = try await tx.execute("DELETE FROM scans.resources WHERE tenant_id = $1 AND connection_id = $2", [tenantId, connectionId])
    }
}

extension InventoryStore {
    /// A resource's attributes as a given scan left them (nil when that scan did not collect it).
    func attributes(_ db: Store, tenantId: String, connectionId: String, resourceId: String, scanId: String) async throws -> [String: JSONValue]? {
        try await db.query(
            .tenant(tenantId),
            "SELECT attributes FROM scans.resources WHERE tenant_id = $1 AND connection_id = $2 AND resource_id = $3 AND last_scan_id = $4",
            [tenantId, connectionId, resourceId, scanId]
        ).first.map { try $0.json("attributes") }
    }
}
