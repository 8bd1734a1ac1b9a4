import Contracts
import Foundation
import ScanEngine
import Store
import VigilCore

/// The ingestion statements: a result batch applied in one statement, a completed scan recorded and
/// what it no longer saw resolved, and expired suppressions reopened. Each feeds `Lifecycle`, so the
/// finding events of a million changes are written by PostgreSQL, not row by row from Swift.
struct IngestStore: Sendable {
    let db: Store

    /// Applies one results batch (see `Ingestor.ingest`); a batch already applied changes nothing.
    static func apply(_ tx: Transaction, _ b: ResultsBatchHead, message: Data, eventId: String, tenantId: String) async throws {
        try await Lifecycle.run(
            tx, ingestSQL, [tenantId, JSONParameter(raw: message), b.scanId, b.connectionId, b.provider, b.service, b.region, eventId])
    }

    static let ingestSQL = """
        WITH src AS MATERIALIZED (SELECT $2::jsonb -> 'data' -> 'results' AS results),
        batch AS (
          INSERT INTO findings.ingested_events (event_id, tenant_id, scan_id, part_service, part_region, results)
          SELECT $8, $1, $3, $6, $7, jsonb_array_length(results) FROM src ON CONFLICT (event_id) DO NOTHING RETURNING event_id),
        r AS MATERIALIZED (
          SELECT x.* FROM src, jsonb_to_recordset(src.results) AS x(fingerprint text, rule_id text, status text, severity text, title text,
            resource_id text, resource_type text, resource_name text, region text, service text, evidence jsonb, tags jsonb,
            estimated_monthly_savings numeric)
          WHERE EXISTS (SELECT 1 FROM batch)
            -- Against the contract (stored, it would break every page that lists the finding): the
            -- cast raises a data error naming the result, and the batch is dropped whole.
            AND CASE WHEN (x.evidence IS NOT NULL AND jsonb_typeof(x.evidence) <> 'object')
                       OR (x.tags IS NOT NULL AND (jsonb_typeof(x.tags) <> 'object'
                                                   OR jsonb_path_exists(x.tags, 'strict $.* ? (@.type() != "string")')))
                THEN ('malformed result ' || coalesce(x.fingerprint, '?') || ': evidence must be an object, tags an object of strings')::int = 0
                ELSE true END),
        counts AS (
          INSERT INTO findings.rule_counts (tenant_id, scan_id, event_id, connection_id, part_service, part_region, rule_id, passed, failed)
          SELECT $1, $3, $8, $4, $6, $7, rule_id, count(*) FILTER (WHERE status = 'PASS'), count(*) FILTER (WHERE status = 'FAIL')
          FROM r GROUP BY rule_id),
        f AS (
          SELECT DISTINCT ON (fingerprint) fingerprint, rule_id, severity, title, resource_id, resource_type, resource_name, region, service,
            coalesce(evidence, '{}') AS evidence, coalesce(tags, '{}') AS tags, estimated_monthly_savings AS savings, $4::uuid AS connection_id
          FROM r WHERE status = 'FAIL'),
        rules_exist AS (SELECT EXISTS (SELECT 1 FROM findings.suppression_rules WHERE tenant_id = $1) AS yes),
        fails AS (
          SELECT f.*, sr.id AS srule, sr.reason AS sreason, sr.expires_at AS sexpires
          FROM f LEFT JOIN LATERAL (
            SELECT s.id, s.reason, s.expires_at FROM findings.suppression_rules s
            WHERE (SELECT yes FROM rules_exist) AND s.tenant_id = $1 AND \(SuppressionStore.matchSQL)
            ORDER BY s.created_at, s.id LIMIT 1) sr ON true),
        up AS (
          INSERT INTO findings.findings AS f (tenant_id, fingerprint, connection_id, rule_id, provider, service, resource_id, resource_type,
            resource_name, region, severity, severity_rank, title, status, evidence, tags, savings, part_service, part_region,
            first_scan_id, last_scan_id, suppression_rule_id, status_reason, status_actor, status_expires_at)
          SELECT $1, x.fingerprint, $4, x.rule_id, $5, x.service, x.resource_id, x.resource_type, x.resource_name, x.region, x.severity,
            array_position(ARRAY['critical','high','medium','low','info'], x.severity) - 1, x.title,
            CASE WHEN x.srule IS NULL THEN 'open' ELSE 'suppressed' END, x.evidence, x.tags, x.savings, $6, $7, $3, $3,
            x.srule, x.sreason, 'suppression-rule:' || x.srule, x.sexpires
          FROM fails x
          ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET last_seen_at = now(), last_scan_id = excluded.last_scan_id,
            severity = excluded.severity, severity_rank = excluded.severity_rank, title = excluded.title, evidence = excluded.evidence,
            tags = excluded.tags, savings = excluded.savings, resource_name = excluded.resource_name, updated_at = now(),
            status = CASE WHEN f.status = 'resolved' THEN excluded.status ELSE f.status END,
            resolved_at = CASE WHEN f.status = 'resolved' THEN NULL ELSE f.resolved_at END,
            status_reason = CASE WHEN f.status = 'resolved' THEN coalesce(excluded.status_reason, 'failed again in a scan') ELSE f.status_reason END,
            status_actor = CASE WHEN f.status = 'resolved' THEN excluded.status_actor ELSE f.status_actor END,
            status_expires_at = CASE WHEN f.status = 'resolved' THEN excluded.status_expires_at ELSE f.status_expires_at END,
            suppression_rule_id = CASE WHEN f.status = 'resolved' THEN excluded.suppression_rule_id ELSE f.suppression_rule_id END,
            reopened_at = CASE WHEN f.status = 'resolved' THEN now() ELSE f.reopened_at END
          RETURNING f.id, f.rule_id, f.severity, f.resource_id, f.title, f.status, f.status_reason, f.suppression_rule_id,
            (f.xmax = 0) AS inserted, (f.reopened_at IS NOT DISTINCT FROM now()) AS reopened),
        t AS (
          SELECT u.id AS finding_id, $4::uuid AS connection_id, u.rule_id, u.severity, e.event_type, e.from_status, e.to_status, e.actor,
            e.reason, $3::uuid AS scan_id, u.resource_id, u.title, e.ord
          FROM up u CROSS JOIN LATERAL (VALUES
            (CASE WHEN u.inserted THEN 'opened' ELSE 'reopened' END, CASE WHEN u.inserted THEN NULL ELSE 'resolved' END, 'open', NULL,
             CASE WHEN u.inserted THEN NULL ELSE 'failed again in a scan' END, 1),
            ('suppressed', 'open', 'suppressed', 'suppression-rule:' || u.suppression_rule_id, u.status_reason, 2)
          ) AS e(event_type, from_status, to_status, actor, reason, ord)
          WHERE (u.inserted OR u.reopened) AND (e.ord = 1 OR u.status = 'suppressed'))
        """

    static func isRecorded(_ tx: Transaction, scanId: String, tenantId: String) async throws -> Bool {
        try await tx.one("SELECT 1 FROM findings.scans WHERE tenant_id = $1 AND scan_id = $2", [tenantId, scanId]) != nil
    }

    /// Results applied so far per part (`service|region`).
    static func resultsPerPart(_ tx: Transaction, scanId: String, tenantId: String) async throws -> [String: Int] {
        var got: [String: Int] = [:]
        for row in try await tx.query(
            """
            SELECT part_service, part_region, sum(results)::int AS n FROM findings.ingested_events WHERE tenant_id = $1 AND scan_id = $2
            GROUP BY 1, 2
            """, [tenantId, scanId])
        {
            got["\(try row.string("part_service"))|\(try row.string("part_region"))"] = try row.int("n")
        }
        return got
    }

    static func record(_ tx: Transaction, _ c: ScanCompleted, tenantId: String) async throws {
        _ = try await tx.query(
            """
            INSERT INTO findings.scans (tenant_id, scan_id, connection_id, status, complete, resources, checks, parts)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
            """,
            [
                tenantId, c.scanId, c.connectionId, c.status, c.complete, c.resourcesScanned ?? 0, c.checksEvaluated ?? 0,
                try JSONParameter(c.parts),
            ])
    }

    /// Resolves the connection's findings that a complete scan evaluated (its rules, in its parts) and
    /// did not see fail.
    static func resolveUnseen(_ tx: Transaction, _ c: ScanCompleted, parts: [ScanPartReport], tenantId: String) async throws {
        try await Lifecycle.run(
            tx,
            """
            WITH parts AS (SELECT * FROM jsonb_to_recordset($4::jsonb) AS p(service text, region text)),
            -- What the scan evaluated, once (a probe per finding grew with the number of batches).
            evaluated AS MATERIALIZED (
              SELECT DISTINCT rc.rule_id, rc.part_service, rc.part_region FROM findings.rule_counts rc
              JOIN parts p ON p.service = rc.part_service AND p.region = rc.part_region
              WHERE rc.tenant_id = $1 AND rc.scan_id = $3),
            target AS (
              SELECT f.id, f.status FROM findings.findings f
              WHERE f.tenant_id = $1 AND f.connection_id = $2 AND f.status IN ('open', 'suppressed', 'accepted_risk') AND f.last_scan_id <> $3
                AND (f.rule_id, f.part_service, f.part_region) IN (SELECT rule_id, part_service, part_region FROM evaluated)
              FOR UPDATE),
            done AS (
              UPDATE findings.findings f SET status = 'resolved', resolved_at = now(), updated_at = now(),
                status_reason = 'passed or gone in scan ' || $3, status_expires_at = NULL, suppression_rule_id = NULL
              FROM target WHERE f.id = target.id
              RETURNING f.id, f.connection_id, f.rule_id, f.severity, f.resource_id, f.title, target.status AS previous),
            t AS (
              SELECT id AS finding_id, connection_id, rule_id, severity, 'resolved' AS event_type, previous AS from_status,
                'resolved' AS to_status, NULL AS actor, 'passed or gone in a complete scan' AS reason, $3::uuid AS scan_id, resource_id,
                  title, 1 AS ord
              FROM done)
            """, [tenantId, c.connectionId, c.scanId, try JSONParameter(parts.map { ["service": $0.service, "region": $0.region] })])
    }

    /// Workspaces with a suppression or risk acceptance past its expiry.
    func tenantsWithExpiredStatus() async throws -> [String] {
        try await db.query(
            .crossTenant,
            """
            SELECT DISTINCT tenant_id FROM findings.findings WHERE status IN ('suppressed', 'accepted_risk') AND status_expires_at < now()
            """
        ).map { try $0.string("tenant_id") }
    }

    /// Returns the workspace's expired suppressions and risk acceptances to `open`; how many.
    static func reopenExpired(_ tx: Transaction, tenantId: String) async throws -> Int {
        try await Lifecycle.run(
            tx,
            """
            WITH target AS (SELECT id, status FROM findings.findings WHERE tenant_id = $1 AND status IN ('suppressed', 'accepted_risk')
                            AND status_expires_at < now() FOR UPDATE),
            done AS (
              UPDATE findings.findings f SET status = 'open', status_reason = 'expired: ' || coalesce(f.status_reason, ''),
                status_expires_at = NULL, suppression_rule_id = NULL, status_actor = NULL, updated_at = now()
              FROM target WHERE f.id = target.id
              RETURNING f.id, f.connection_id, f.rule_id, f.severity, f.resource_id, f.title, target.status AS previous),
            t AS (
              SELECT id AS finding_id, connection_id, rule_id, severity, 'expired' AS event_type, previous AS from_status,
                'open' AS to_status,
                NULL AS actor, 'the suppression or risk acceptance expired' AS reason, NULL::uuid AS scan_id, resource_id, title, 1 AS ord
              FROM done)
            """, [tenantId])
    }
}
