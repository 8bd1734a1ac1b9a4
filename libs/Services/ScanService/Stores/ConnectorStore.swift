import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

struct EnrollmentView: Codable, Sendable {
    var id: String
    var name: String
    var tokenPrefix: String
    var maxUses: Int?
    var uses: Int
    var status: String
    var expiresAt: Date
    var createdBy: String?
    var createdAt: Date
    var revokedAt: Date?
    /// Only in the reply that creates it.
    var token: String?
}

struct ConnectorJobCounts: Codable, Sendable {
    var queued: Int
    var dispatched: Int
    var completed: Int
    var failed: Int
    var cancelled: Int
}

struct ConnectorView: Codable, Sendable {
    var id: String
    var name: String
    var hostname: String
    var version: String
    var connectorType: String
    var status: String
    var lastSeenAt: Date?
    var facts: [String: String]
    var load: [Double]?
    var enrollmentId: String?
    var createdAt: Date
    var revokedAt: Date?
    var jobs: ConnectorJobCounts?
}

/// A connector job's state as the scan waiting for it sees it.
struct ConnectorJobState: Sendable {
    var status: String
    var error: String?
    var result: Data?
}

/// Every statement on the connector tables: enrollment tokens (stored hashed, counted, expiring),
/// connectors (secret sealed, last heartbeat, facts), the nonces their signed calls used, and the jobs
/// handed to them with the results (whole or in chunks) they post back.
struct ConnectorStore: Sendable {
    let db: Store
    /// A connector is online when its last heartbeat is this recent.
    let onlineWithin: TimeInterval

    static let enrollmentStatus = """
        CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= now() THEN 'expired'
             WHEN max_uses IS NOT NULL AND uses >= max_uses THEN 'exhausted' ELSE 'active' END
        """

    static func enrollment(_ r: Row) throws -> EnrollmentView {
        EnrollmentView(
            id: try r.string("id"), name: try r.string("name"), tokenPrefix: try r.string("token_prefix"), maxUses: r.optionalInt("max_uses"),
            uses: try r.int("uses"), status: try r.string("status"), expiresAt: try r.date("expires_at"), createdBy: r.optionalString("created_by"),
            createdAt: try r.date("created_at"), revokedAt: r.optionalDate("revoked_at"), token: nil)
    }

    func connector(_ r: Row) throws -> ConnectorView {
        let revoked = r.optionalDate("revoked_at")
        let seen = r.optionalDate("last_heartbeat_at")
        let status =
            revoked != nil ? "revoked" : seen.map { Date().timeIntervalSince($0) <= onlineWithin ? "online" : "offline" } ?? "pending"
        var jobs: ConnectorJobCounts? = nil
        if !r.isNull("queued") {
            jobs = ConnectorJobCounts(
                queued: try r.int("queued"), dispatched: try r.int("dispatched"), completed: try r.int("completed"), failed: try r.int("failed"),
                cancelled: try r.int("cancelled"))
        }
        return ConnectorView(
            id: try r.string("id"), name: try r.string("name"), hostname: try r.string("hostname"), version: try r.string("version"),
            connectorType: try r.string("connector_type"), status: status, lastSeenAt: seen, facts: try r.json("facts"),
            load: r.isNull("load") ? nil : try r.json("load"), enrollmentId: r.optionalString("enrollment_id"), createdAt: try r.date("created_at"),
            revokedAt: revoked, jobs: jobs)
    }

    // MARK: enrollments

    struct NewEnrollment: Sendable {
        var id: String
        var name: String
        var tokenHash: String
        var tokenPrefix: String
        var maxUses: Int?
        var expiresAt: Date
        var createdBy: String
    }

    static func insertEnrollment(_ tx: Transaction, tenantId: String, _ e: NewEnrollment) async throws -> EnrollmentView {
        try enrollment(
            try await tx.single(
                """
                INSERT INTO scans.connector_enrollments (id, tenant_id, name, token_hash, token_prefix, max_uses, expires_at, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *, \(enrollmentStatus) AS status
                """, [e.id, tenantId, e.name, e.tokenHash, e.tokenPrefix, e.maxUses, e.expiresAt, e.createdBy]))
    }

    func enrollments(_ page: Pagination, tenantId: String, status: String?) async throws -> Page<EnrollmentView> {
        var filter = "tenant_id = $1"
        var values: [any SQLParameter] = [tenantId]
        if let status {
            values.append(status)
            filter += " AND \(Self.enrollmentStatus) = $2"
        }
        return try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, columns: "*, \(Self.enrollmentStatus) AS status", from: "scans.connector_enrollments", filter: filter, values) {
                try Self.enrollment($0)
            }
        }
    }

    /// Soft-revokes; false when the workspace has no such enrollment.
    static func revokeEnrollment(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.one(
            """
            UPDATE scans.connector_enrollments SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND tenant_id = $2 RETURNING id
            """, [id, tenantId]) != nil
    }

    /// Counts a use of a live enrollment token; its (id, tenant) or nil when unknown, revoked, expired or used up.
    static func useEnrollment(_ tx: Transaction, tokenHash: String) async throws -> (id: String, tenantId: String)? {
        try await tx.one(
            """
            UPDATE scans.connector_enrollments SET uses = uses + 1
            WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > now() AND (max_uses IS NULL OR uses < max_uses)
            RETURNING id, tenant_id
            """, [tokenHash]
        ).map { (try $0.string("id"), try $0.string("tenant_id")) }
    }

    // MARK: connectors

    static let withCounts = """
        SELECT c.*,
          (SELECT count(*) FILTER (WHERE status = 'queued') FROM scans.connector_jobs j WHERE j.connector_id = c.id)::int AS queued,
          (SELECT count(*) FILTER (WHERE status = 'dispatched') FROM scans.connector_jobs j WHERE j.connector_id = c.id)::int AS dispatched,
          (SELECT count(*) FILTER (WHERE status = 'completed') FROM scans.connector_jobs j WHERE j.connector_id = c.id)::int AS completed,
          (SELECT count(*) FILTER (WHERE status = 'failed') FROM scans.connector_jobs j WHERE j.connector_id = c.id)::int AS failed,
          (SELECT count(*) FILTER (WHERE status = 'cancelled') FROM scans.connector_jobs j WHERE j.connector_id = c.id)::int AS cancelled
        FROM scans.connectors c
        """

    struct NewConnector: Sendable {
        var id: String
        var enrollmentId: String
        var name: String
        var hostname: String
        var version: String
        var sealedSecret: Data
    }

    static func insertConnector(_ tx: Transaction, tenantId: String, _ c: NewConnector) async throws {
        try await tx.execute(
            """
            INSERT INTO scans.connectors (id, tenant_id, enrollment_id, name, hostname, version, secret_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, [c.id, tenantId, c.enrollmentId, c.name, c.hostname, c.version, c.sealedSecret])
    }

    func list(_ page: Pagination, tenantId: String, status: String?, type: String?) async throws -> Page<ConnectorView> {
        var filter = "c.tenant_id = $1"
        var values: [any SQLParameter] = [tenantId]
        if let type {
            values.append(type)
            filter += " AND c.connector_type = $\(values.count)"
        }
        if let status {
            values.append(status)
            values.append(onlineWithin)
            let s = values.count - 1
            let w = values.count
            filter += """
                 AND (CASE WHEN c.revoked_at IS NOT NULL THEN 'revoked' WHEN c.last_heartbeat_at IS NULL THEN 'pending'
                      WHEN c.last_heartbeat_at > now() - make_interval(secs => $\(w)) THEN 'online' ELSE 'offline' END) = $\(s)
                """
        }
        return try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "scans.connectors c", filter: filter, values, alias: "c.") { try connector($0) }
        }
    }

    func get(id: String, tenantId: String) async throws -> ConnectorView? {
        try await db.query(.tenant(tenantId), "\(Self.withCounts) WHERE c.id = $1 AND c.tenant_id = $2", [id, tenantId]).first.map(connector)
    }

    /// Revokes the connector (its secret stops working on the next call) and cancels its unfinished
    /// jobs; false when the workspace has no such connector. Revoking twice changes nothing.
    static func revoke(_ tx: Transaction, id: String, tenantId: String) async throws -> (found: Bool, cancelledJobs: Int) {
        guard
            try await tx.one(
                "UPDATE scans.connectors SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND tenant_id = $2 RETURNING id", [id, tenantId])
                != nil
        else { return (false, 0) }
        let n = try await tx.execute(
            """
            UPDATE scans.connector_jobs SET status = 'cancelled', error = 'the connector was revoked', completed_at = now()
            WHERE connector_id = $1 AND status IN ('queued', 'dispatched')
            """, [id])
        return (true, n)
    }

    /// What authenticates a connector's call: its workspace, sealed secret and whether it is revoked.
    func credentials(id: String) async throws -> (tenantId: String, sealed: Data, revoked: Bool)? {
        try await db.query(.crossTenant, "SELECT tenant_id, secret_sealed, revoked_at FROM scans.connectors WHERE id = $1", [id]).first.map {
            (try $0.string("tenant_id"), try $0.bytes("secret_sealed"), !$0.isNull("revoked_at"))
        }
    }

    /// Records a nonce; false when the connector used it before.
    func useNonce(connectorId: String, nonce: String) async throws -> Bool {
        try await db.query(
            .crossTenant,
            "INSERT INTO scans.connector_nonces (connector_id, nonce) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING nonce", [connectorId, nonce]
        ).first != nil
    }

    /// Nonces older than the accepted clock skew can no longer be replayed (their timestamp is refused).
    func pruneNonces(olderThan seconds: Int) async throws {
        try await db.query(.crossTenant, "DELETE FROM scans.connector_nonces WHERE seen_at < now() - make_interval(secs => $1)", [seconds])
    }

    func heartbeat(id: String, tenantId: String, _ h: HeartbeatFacts) async throws {
        try await db.query(
            .tenant(tenantId),
            """
            UPDATE scans.connectors SET last_heartbeat_at = now(), version = $2, hostname = coalesce($3, hostname), facts = $4::jsonb,
              load = $5::jsonb WHERE id = $1
            """, [id, h.version, h.hostname, try JSONParameter(h.facts), try h.load.map { try JSONParameter($0) }])
    }

    struct HeartbeatFacts: Sendable {
        var version: String
        var hostname: String?
        var facts: [String: String]
        var load: [Double]?
    }

    // MARK: jobs

    static func enqueue(
        _ tx: Transaction, id: String, tenantId: String, connectorId: String, scanId: String?, kind: String, parameters: [String: String]
    ) async throws {
        try await tx.execute(
            """
            INSERT INTO scans.connector_jobs (id, tenant_id, connector_id, scan_id, kind, parameters, status)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'queued')
            """, [id, tenantId, connectorId, scanId, kind, try JSONParameter(parameters)])
    }

    /// Hands the oldest queued job to the connector (marking it dispatched), or nil.
    func claimNext(connectorId: String, tenantId: String) async throws -> (id: String, kind: String, parameters: [String: String], at: Date)? {
        try await db.query(
            .tenant(tenantId),
            """
            UPDATE scans.connector_jobs SET status = 'dispatched', dispatched_at = now()
            WHERE id = (SELECT id FROM scans.connector_jobs WHERE connector_id = $1 AND status = 'queued' ORDER BY created_at
                        FOR UPDATE SKIP LOCKED LIMIT 1)
            RETURNING id, kind, parameters, dispatched_at
            """, [connectorId]
        ).first.map { (try $0.string("id"), try $0.string("kind"), try $0.json("parameters"), try $0.date("dispatched_at")) }
    }

    /// The job as its connector may report on it.
    static func lockJob(_ tx: Transaction, id: String, connectorId: String) async throws -> (status: String, chunkCount: Int?, sha256: String?)? {
        try await tx.one(
            "SELECT status, chunk_count, sha256 FROM scans.connector_jobs WHERE id = $1 AND connector_id = $2 FOR UPDATE", [id, connectorId]
        ).map { (try $0.string("status"), $0.optionalInt("chunk_count"), $0.optionalString("sha256")) }
    }

    /// Stores a chunk (a repeated one is ignored) and returns how many the job has.
    static func addChunk(_ tx: Transaction, jobId: String, tenantId: String, index: Int, count: Int, sha256: String, data: String) async throws -> Int
    {
        try await tx.execute("UPDATE scans.connector_jobs SET chunk_count = $2, sha256 = $3 WHERE id = $1", [jobId, count, sha256])
        try await tx.execute(
            "INSERT INTO scans.connector_job_chunks (job_id, tenant_id, idx, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [jobId, tenantId, index, data])
        return try await tx.single("SELECT count(*)::int AS n FROM scans.connector_job_chunks WHERE job_id = $1", [jobId]).int("n")
    }

    static func chunks(_ tx: Transaction, jobId: String) async throws -> String {
        try await tx.query("SELECT data FROM scans.connector_job_chunks WHERE job_id = $1 ORDER BY idx", [jobId]).map { try $0.string("data") }
            .joined()
    }

    static func finish(_ tx: Transaction, jobId: String, status: String, result: Data?, error: String?) async throws {
        try await tx.execute(
            """
            UPDATE scans.connector_jobs SET status = $2, result = $3::jsonb, error = $4, completed_at = now() WHERE id = $1
            """, [jobId, status, result.map { JSONParameter(raw: $0) }, error])
        try await tx.execute("DELETE FROM scans.connector_job_chunks WHERE job_id = $1", [jobId])
    }

    /// The job's state for the scan that waits on it.
    func state(jobId: String, tenantId: String) async throws -> ConnectorJobState? {
        try await db.query(.tenant(tenantId), "SELECT status, error, result FROM scans.connector_jobs WHERE id = $1", [jobId]).first.map {
            ConnectorJobState(
                status: try $0.string("status"), error: $0.optionalString("error"), result: $0.optionalString("result").map { Data($0.utf8) })
        }
    }

    /// Gives up on a job (the scan stopped waiting).
    func cancel(jobId: String, tenantId: String, reason: String) async throws {
        try await db.query(
            .tenant(tenantId),
            """
            UPDATE scans.connector_jobs SET status = 'cancelled', error = $2, completed_at = now()
            WHERE id = $1 AND status IN ('queued', 'dispatched')
            """,
            [jobId, reason])
    }

    /// The workspace's connector, if it exists and is not revoked.
    func usable(id: String, tenantId: String) async throws -> ConnectorView? {
        try await db.query(
            .tenant(tenantId), "SELECT * FROM scans.connectors WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL", [id, tenantId]
        )
        .first.map(connector)
    }
}
