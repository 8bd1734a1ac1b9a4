import Bus
import Contracts
import Foundation
import Logging
import ScanEngine
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

struct Envelope<T: Decodable & Sendable>: Decodable, Sendable {
    var id: String
    var type: String
    var tenantId: String?
    var data: T
}
/// A `scan.results` batch without its results, which PostgreSQL reads from the message itself.
struct ResultsBatchHead: Sendable {
    var scanId: String
    var connectionId: String
    var provider: String
    var service: String
    var region: String

    /// The envelope's id and tenant and this head, read with a byte scan: decoding the envelope with
    /// `JSONDecoder` parsed the whole batch (hundreds of kilobytes of results) for five strings.
    /// Nil when one is missing or not a string; PostgreSQL checks the ids' form.
    static func read(_ message: Data) -> (id: String, tenantId: String, head: ResultsBatchHead)? {
        guard
            let (top, d) = JSONHead.read(
                message, keys: ["id", "tenant_id"], nested: "data",
                nestedKeys: ["scan_id", "connection_id", "provider", "service", "region"]),
            let id = top[0], let tenant = top[1], let scan = d[0], let conn = d[1], let provider = d[2], let service = d[3], let region = d[4]
        else { return nil }
        return (id, tenant, ResultsBatchHead(scanId: scan, connectionId: conn, provider: provider, service: service, region: region))
    }
}
struct ScanCompleted: Codable, Sendable {
    var scanId: String
    var connectionId: String
    var status: String
    var complete: Bool
    var parts: [ScanPartReport]
    var resourcesScanned: Int?
    var checksEvaluated: Int?
}

/// What one lifecycle change needs to become a finding event row and a bus event.
struct Transition: Sendable {
    var findingId: String
    var connectionId: String
    var ruleId: String
    var severity: String
    var eventType: String
    var from: String?
    var to: String
    var actor: String?
    var reason: String?
    var scanId: String?
    var resourceId: String
    var title: String
}

/// Every lifecycle change becomes a finding event row (the feed) and a bus event, written by one SQL
/// fragment: bulk paths (ingestion, resolution, expiry) feed it a data-modifying CTE, so a million
/// transitions never pass through Swift one by one; single changes feed it rows built in Swift.
enum Lifecycle {
    /// SQL continuing a `WITH … t AS (…)`: inserts a finding event per row of `t` and writes the bus
    /// events as one outbox batch row; returns one row with `events`. `t` has the columns finding_id,
    /// connection_id, rule_id, severity, event_type, from_status, to_status, actor, reason, scan_id,
    /// resource_id, title and ord (the order of the events). `$1` must be the tenant id and
    /// `$<headersParam>` the transaction's `outboxHeaders`.
    static func emitSQL(_ tx: Transaction, headersParam: Int) -> String {
        // Ids and times are drawn once per transition (a materialized CTE), so the feed row and the
        // bus event share them without joining the two back together. The event JSON is concatenated:
        // ids and the time are plain ASCII, every text goes through to_json (escaped), and a NULL
        // member drops out of concat_ws as json_strip_nulls would drop it; json_build_object with
        // json_strip_nulls cost three times as much per event.
        """
        , te AS MATERIALIZED (
          SELECT t.*, findings.uuid7() AS event_id, clock_timestamp() AS at,
            CASE t.event_type WHEN 'accepted_risk' THEN 'risk_accepted' WHEN 'expired' THEN 'reopened' ELSE t.event_type END AS name
          FROM t ORDER BY ord, finding_id),
        ev AS (
          INSERT INTO findings.finding_events (id, tenant_id, finding_id, connection_id, rule_id, severity, event_type, from_status, to_status,
            actor, reason, scan_id, created_at)
          SELECT event_id, $1, finding_id, connection_id, rule_id, severity, event_type, from_status, to_status, actor, reason, scan_id, at
          FROM te),
        outbox AS (\(tx.outboxBatchInsert(line: """
            'vigil.events.finding.' || name || ' ' || event_id || ' {"id":"' || event_id || '","type":"finding.' || name ||
              '","occurred_at":"' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","tenant_id":"' || $1::text ||
              '","data":{' || concat_ws(',', '"finding_id":"' || finding_id || '"', '"event_id":"' || event_id || '"',
                '"connection_id":"' || connection_id || '"', '"rule_id":' || to_json(rule_id), '"severity":' || to_json(severity),
                '"status":' || to_json(to_status), '"resource_id":' || to_json(resource_id), '"title":' || to_json(title),
                '"previous_status":' || to_json(from_status), '"actor":' || to_json(actor), '"reason":' || to_json(reason),
                '"scan_id":"' || scan_id || '"') || '}}'
            """, from: "te", order: "at, event_id", headersParam: headersParam)) RETURNING 1)
        SELECT (SELECT count(*) FROM te)::int AS events
        """
    }

    /// Records transitions built in Swift (changes made through the API, remediation outcomes).
    static func record(_ tx: Transaction, tenantId: String, _ ts: [Transition]) async throws {
        guard !ts.isEmpty else { return }
        var rows = "["
        for (i, t) in ts.enumerated() {
            if i > 0 { rows.append(",") }
            FastJSON.object(
                [
                    ("finding_id", .string(t.findingId)), ("connection_id", .string(t.connectionId)), ("rule_id", .string(t.ruleId)),
                    ("severity", .string(t.severity)), ("event_type", .string(t.eventType)), ("from_status", .string(t.from)),
                    ("to_status", .string(t.to)), ("actor", .string(t.actor)), ("reason", .string(t.reason)), ("scan_id", .string(t.scanId)),
                    ("resource_id", .string(t.resourceId)), ("title", .string(t.title)), ("ord", .int(i)),
                ], into: &rows)
        }
        rows.append("]")
        try await run(
            tx,
            """
            WITH t AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(finding_id uuid, connection_id uuid, rule_id text, severity text,
              event_type text, from_status text, to_status text, actor text, reason text, scan_id uuid, resource_id text, title text, ord int))
            """, [tenantId, JSONParameter(raw: Data(rows.utf8))])
    }

    /// Runs `sql` (a `WITH … t AS (…)` producing transitions, `$1` = tenant) followed by the emission
    /// of its events; returns how many lifecycle events were written.
    @discardableResult
    static func run(_ tx: Transaction, _ sql: String, _ params: [any SQLParameter]) async throws -> Int {
        let rows = try await tx.query(sql + "\n" + emitSQL(tx, headersParam: params.count + 1), params + [try tx.outboxHeaders])
        tx.wroteEvents()
        return try rows.first?.int("events") ?? 0
    }
}

/// Consumes result batches (`vigil.jobs.findings.results`) and `vigil.events.scan.completed` durably. A batch is applied
/// once (its event id is recorded in the same transaction); a completed scan resolves findings only
/// when the scan was complete and every result batch of it has been applied.
struct Ingestor: Sendable {
    let store: Store
    let logger: Logger

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        do {
            switch m.subject {
            case Jobs.findingsResults, Streams.legacyScanResults:
                guard let (id, tenant, head) = ResultsBatchHead.read(m.data) else {
                    logger.error("result batch without its head (id, tenant_id, data.scan_id …) dropped", metadata: ["subject": "\(m.subject)"])
                    return .drop
                }
                try await ingest(head, message: m.data, eventId: id, tenantId: tenant)
                return .ack
            case Events.scanCompleted.subject:
                let env = try JSON.decode(Envelope<ScanCompleted>.self, from: m.data)
                guard let tenant = env.tenantId else { return .drop }
                return try await complete(env.data, tenantId: tenant) ? .ack : .retry(after: .seconds(1))
            default:
                return .ack
            }
        } catch let e as DecodingError {
            logger.error("undecodable scan event dropped", metadata: ["subject": "\(m.subject)", "error": "\(e)"])
            return .drop
        } catch let e as StoreError where e.isDataError {
            // Results PostgreSQL cannot take (not objects, a missing field, an unknown severity):
            // retrying cannot help.
            logger.error("malformed scan results dropped", metadata: ["subject": "\(m.subject)", "error": "\(e)"])
            return .drop
        } catch {
            logger.warning("ingestion failed; will retry", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
            return .retry(after: StreamConsumer.backoff(attempt: m.deliveryCount, cap: .seconds(60)))
        }
    }

    /// Applies one results batch in one statement: the batch is recorded (a redelivery stops
    /// there), rule PASS/FAIL counts, finding upserts (new → open, resolved → reopened; suppression
    /// rules decide whether a new or returning finding starts suppressed) and their lifecycle
    /// events. The results go to PostgreSQL as the message's JSON: no per-finding work in Swift.
    func ingest(_ b: ResultsBatchHead, message: Data, eventId: String, tenantId: String) async throws {
        _ = try await store.transaction(.tenant(tenantId)) { tx in
            try await Lifecycle.run(
                tx, Self.ingestSQL,
                [
                    tenantId, JSONParameter(raw: message), b.scanId, b.connectionId, b.provider,
                    b.service, b.region, eventId,
                ])
        }
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
            WHERE (SELECT yes FROM rules_exist) AND s.tenant_id = $1 AND \(SuppressionHandlers.matchSQL)
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

    /// Returns false while result batches of the scan are still missing (the message is retried).
    func complete(_ c: ScanCompleted, tenantId: String) async throws -> Bool {
        try await store.transaction(.tenant(tenantId)) { tx in
            if try await tx.one("SELECT 1 FROM findings.scans WHERE tenant_id = $1 AND scan_id = $2", [tenantId, c.scanId]) != nil { return true }
            let completedParts = c.parts.filter { $0.status == "completed" }
            if c.status == "completed" {
                var got: [String: Int] = [:]
                for row in try await tx.query(
                    """
                    SELECT part_service, part_region, sum(results)::int AS n FROM findings.ingested_events WHERE tenant_id = $1 AND scan_id = $2
                    GROUP BY 1, 2
                    """, [tenantId, c.scanId])
                {
                    got["\(try row.string("part_service"))|\(try row.string("part_region"))"] = try row.int("n")
                }
                for p in completedParts where (got["\(p.service)|\(p.region)"] ?? 0) < p.checks { return false }
            }
            _ = try await tx.query(
                """
                INSERT INTO findings.scans (tenant_id, scan_id, connection_id, status, complete, resources, checks, parts)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
                """,
                [
                    tenantId, c.scanId, c.connectionId, c.status, c.complete, c.resourcesScanned ?? 0, c.checksEvaluated ?? 0,
                    try JSONParameter(c.parts),
                ])
            // Only a complete scan resolves, and only what it evaluated: rules it ran, in parts it covered.
            guard c.status == "completed" && c.complete && !completedParts.isEmpty else { return true }
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
                """, [tenantId, c.connectionId, c.scanId, try JSONParameter(completedParts.map { ["service": $0.service, "region": $0.region] })])
            return true
        }
    }
}

/// Returns suppressed and risk-accepted findings to `open` when their expiry passes.
struct ExpirySweeper: Sendable {
    let store: Store

    func sweep() async throws -> Int {
        let tenants = try await store.query(
            .crossTenant,
            """
            SELECT DISTINCT tenant_id FROM findings.findings WHERE status IN ('suppressed', 'accepted_risk') AND status_expires_at < now()
            """
        ).map { try $0.string("tenant_id") }
        var n = 0
        for t in tenants {
            n += try await store.transaction(.tenant(t)) { tx in
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
                    """, [t])
            }
        }
        return n
    }
}
