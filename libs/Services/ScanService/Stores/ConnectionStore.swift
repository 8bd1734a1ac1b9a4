import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Where a connection stands after its last check.
enum ConnectionStatus: String, Codable, Sendable {
    case pending, active, error
}

/// A stored connection as the scan role needs it: its view, provider, settings and sealed credentials.
struct StoredConnection: Sendable {
    var view: ConnectionView
    var sealedCredentials: Data
    /// `created_at` as PostgreSQL wrote it, for exact keyset comparisons.
    var createdAtText: String
    var provider: String { view.provider }
    var settings: ConnectionSettings { view.settings }
}

/// Every statement on `scans.connections`: the connections aggregate of the scan orchestrator.
struct ConnectionStore: Sendable {
    let db: Store

    static func view(_ r: Row) throws -> ConnectionView {
        ConnectionView(
            id: try r.string("id"), name: try r.string("name"), provider: try r.string("provider"), status: try r.string("status"),
            credentials: try r.json("credentials_masked"), settings: try r.json("settings"),
            createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"), lastScanAt: r.optionalDate("last_scan_at"),
            lastTestedAt: r.optionalDate("last_tested_at"), lastError: r.optionalString("last_error"))
    }

    static func stored(_ r: Row) throws -> StoredConnection {
        StoredConnection(view: try view(r), sealedCredentials: try r.bytes("credentials_sealed"), createdAtText: try r.string("created_at"))
    }

    /// One creation at a time per workspace (until the transaction ends), so a quota check counts exactly.
    func serializeCreations(_ tx: Transaction, tenantId: String) async throws {
        _ = try await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["connections:" + tenantId])
    }

    func count(_ tx: Transaction, tenantId: String) async throws -> Int {
        try await tx.single("SELECT count(*) AS n FROM scans.connections WHERE tenant_id = $1", [tenantId]).int("n")
    }

    func count(tenantId: String) async throws -> Int {
        try await db.single(.tenant(tenantId), "SELECT count(*) AS n FROM scans.connections WHERE tenant_id = $1", [tenantId]).int("n")
    }

    /// How many of the workspace's connections are older than this one (the plan's limit makes the newest read-only).
    func countOlder(_ tx: Transaction, tenantId: String, than c: StoredConnection) async throws -> Int {
        try await tx.single(
            "SELECT count(*) AS n FROM scans.connections WHERE tenant_id = $1 AND (created_at, id) < ($2::timestamptz, $3::uuid)",
            [tenantId, c.createdAtText, c.view.id]
        ).int("n")
    }

    struct New {
        var id: String
        var tenantId: String
        var name: String
        var provider: String
        var sealed: Data
        var keyId: String
        var masked: [String: String]
        var settings: ConnectionSettings
    }

    func insert(_ tx: Transaction, _ c: New) async throws -> ConnectionView {
        try Self.view(
            try await tx.single(
                """
                INSERT INTO scans.connections (id, tenant_id, name, provider, status, credentials_sealed, credentials_key_id,
                  credentials_masked, settings)
                VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7::jsonb, $8::jsonb) RETURNING *
                """,
                [c.id, c.tenantId, c.name, c.provider, c.sealed, c.keyId, try JSONParameter(c.masked), try JSONParameter(c.settings)]))
    }

    func list(_ page: Pagination, tenantId: String) async throws -> Page<ConnectionView> {
        try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "scans.connections", filter: "tenant_id = $1", [tenantId], map: Self.view)
        }
    }

    func find(id: String, tenantId: String) async throws -> StoredConnection? {
        try await db.query(.tenant(tenantId), "SELECT * FROM scans.connections WHERE id = $1 AND tenant_id = $2", [id, tenantId]).first
            .map(Self.stored)
    }

    func find(_ tx: Transaction, id: String, tenantId: String) async throws -> StoredConnection? {
        try await tx.one("SELECT * FROM scans.connections WHERE id = $1 AND tenant_id = $2", [id, tenantId]).map(Self.stored)
    }

    func exists(id: String, tenantId: String) async throws -> Bool {
        try await db.query(.tenant(tenantId), "SELECT 1 FROM scans.connections WHERE id = $1 AND tenant_id = $2", [id, tenantId]).first != nil
    }

    struct Change {
        var name: String?
        var sealed: Data?
        var keyId: String
        var masked: [String: String]?
        var settings: ConnectionSettings?
    }

    /// Applies the given fields; new credentials make the connection `pending` until it is tested again.
    func update(_ tx: Transaction, id: String, tenantId: String, _ c: Change) async throws -> ConnectionView? {
        try await tx.one(
            """
            UPDATE scans.connections SET name = coalesce($3, name), credentials_sealed = coalesce($4, credentials_sealed),
              credentials_key_id = CASE WHEN $4::bytea IS NULL THEN credentials_key_id ELSE $5 END,
              credentials_masked = coalesce($6::jsonb, credentials_masked), settings = coalesce($7::jsonb, settings),
              status = CASE WHEN $4::bytea IS NULL THEN status ELSE 'pending' END, updated_at = now()
            WHERE id = $1 AND tenant_id = $2 RETURNING *
            """,
            [id, tenantId, c.name, c.sealed, c.keyId, try c.masked.map { try JSONParameter($0) }, try c.settings.map { try JSONParameter($0) }]
        ).map(Self.view)
    }

    /// Deletes the connection; false when it does not exist in the workspace.
    func delete(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.execute("DELETE FROM scans.connections WHERE id = $1 AND tenant_id = $2", [id, tenantId]) == 1
    }

    /// The outcome of a credentials test.
    func recordTest(id: String, tenantId: String, ok: Bool, error: String?) async throws {
        try await db.query(
            .tenant(tenantId),
            "UPDATE scans.connections SET status = $3, last_tested_at = now(), last_error = $4 WHERE id = $1 AND tenant_id = $2",
            [id, tenantId, (ok ? ConnectionStatus.active : .error).rawValue, error])
    }

    func recordScan(_ tx: Transaction, id: String) async throws {
        _ = try await tx.query("UPDATE scans.connections SET last_scan_at = now() WHERE id = $1", [id])
    }

    /// Records the SSH host key a Linux connection's first scan saw (only if none is pinned yet).
    func pinHostKey(id: String, tenantId: String, hostKey: String) async throws {
        try await db.query(
            .tenant(tenantId),
            """
            UPDATE scans.connections SET settings = jsonb_set(settings, '{host_key}', to_jsonb($3::text)), updated_at = now()
            WHERE id = $1 AND tenant_id = $2 AND settings->>'host_key' IS NULL
            """, [id, tenantId, hostKey])
    }

    /// The workspace's web connection for exactly this URL, if any (the oldest).
    func findWeb(url: String, tenantId: String) async throws -> String? {
        try await db.query(
            .tenant(tenantId),
            "SELECT id FROM scans.connections WHERE tenant_id = $1 AND provider = 'web' AND settings->>'url' = $2 ORDER BY created_at, id LIMIT 1",
            [tenantId, url]
        ).first.map { try $0.string("id") }
    }

    /// Every connection id of the workspace, oldest first.
    func ids(tenantId: String) async throws -> [String] {
        try await db.query(.tenant(tenantId), "SELECT id FROM scans.connections WHERE tenant_id = $1 ORDER BY created_at, id", [tenantId])
            .map { try $0.string("id") }
    }
}

extension ConnectionStore {
    /// The workspace's repositories (connections with provider `repo`), newest first, by offset.
    func repositories(tenantId: String, includeArchived: Bool, limit: Int, skip: Int) async throws -> (items: [ConnectionView], total: Int) {
        try await db.transaction(.tenant(tenantId)) { tx in
            let filter = "tenant_id = $1 AND provider = 'repo' AND ($2 OR coalesce((settings->>'archived')::boolean, false) = false)"
            let rows = try await tx.query(
                "SELECT * FROM scans.connections WHERE \(filter) ORDER BY created_at DESC, id DESC LIMIT \(limit) OFFSET \(skip)",
                [tenantId, includeArchived])
            let total = try await tx.single("SELECT count(*) AS n FROM scans.connections WHERE \(filter)", [tenantId, includeArchived]).int("n")
            return (try rows.map(Self.view), total)
        }
    }
}
