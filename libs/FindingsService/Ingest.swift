import Bus
import Foundation
import Logging
import ScanEngine
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

struct Envelope<T: Decodable & Sendable>: Decodable, Sendable { var id: String; var type: String; var tenantId: String?; var data: T }
struct TypeOnly: Decodable, Sendable {}
struct ScanCompleted: Codable, Sendable {
    var scanId: String; var connectionId: String; var status: String; var complete: Bool
    var parts: [ScanPartReport]; var resourcesScanned: Int?; var checksEvaluated: Int?
}

/// What one lifecycle change needs to become a finding event row and a bus event.
struct Transition: Sendable {
    var findingId: String; var connectionId: String; var ruleId: String; var severity: String
    var eventType: String; var from: String?; var to: String; var actor: String?; var reason: String?; var scanId: String?
    var resourceId: String; var title: String
}

enum Lifecycle {
    static let subjects = ["opened": "vigil.events.finding.opened", "resolved": "vigil.events.finding.resolved",
                           "reopened": "vigil.events.finding.reopened", "suppressed": "vigil.events.finding.suppressed",
                           "accepted_risk": "vigil.events.finding.risk_accepted", "expired": "vigil.events.finding.reopened"]

    /// Records transitions as finding events (one set-based insert) and publishes them (outbox).
    static func record(_ tx: Transaction, tenantId: String, _ ts: [Transition]) async throws {
        guard !ts.isEmpty else { return }
        var rows = "["
        for (i, t) in ts.enumerated() {
            if i > 0 { rows.append(",") }
            FastJSON.object([("finding_id", .string(t.findingId)), ("connection_id", .string(t.connectionId)), ("rule_id", .string(t.ruleId)),
                             ("severity", .string(t.severity)), ("event_type", .string(t.eventType)), ("from_status", .string(t.from)),
                             ("to_status", .string(t.to)), ("actor", .string(t.actor)), ("reason", .string(t.reason)), ("scan_id", .string(t.scanId))],
                            into: &rows)
        }
        rows.append("]")
        var ids: [String: String] = [:]
        for row in try await tx.query("""
            INSERT INTO findings.finding_events (tenant_id, finding_id, connection_id, rule_id, severity, event_type, from_status, to_status,
              actor, reason, scan_id)
            SELECT $1, x.finding_id, x.connection_id, x.rule_id, x.severity, x.event_type, x.from_status, x.to_status, x.actor, x.reason, x.scan_id
            FROM jsonb_to_recordset($2::jsonb) AS x(finding_id uuid, connection_id uuid, rule_id text, severity text,
              event_type text, from_status text, to_status text, actor text, reason text, scan_id uuid)
            RETURNING id, finding_id, event_type
            """, [tenantId, JSONParameter(raw: Data(rows.utf8))]) {
            ids["\(try row.string("finding_id"))|\(try row.string("event_type"))"] = try row.string("id")
        }
        var events: [(subject: String, type: String, data: String)] = []
        events.reserveCapacity(ts.count)
        for t in ts {
            let eventId = ids["\(t.findingId)|\(t.eventType)"] ?? ID.make()
            var data: [(String, FastJSON.Value)] = [("finding_id", .string(t.findingId)), ("event_id", .string(eventId)),
                                                    ("connection_id", .string(t.connectionId)), ("rule_id", .string(t.ruleId)),
                                                    ("severity", .string(t.severity)), ("status", .string(t.to)),
                                                    ("resource_id", .string(t.resourceId)), ("title", .string(t.title))]
            if let f = t.from { data.append(("previous_status", .string(f))) }
            if let a = t.actor { data.append(("actor", .string(a))) }
            if let r = t.reason { data.append(("reason", .string(r))) }
            if let s = t.scanId { data.append(("scan_id", .string(s))) }
            let name = t.eventType == "accepted_risk" ? "risk_accepted" : t.eventType == "expired" ? "reopened" : t.eventType
            events.append((subjects[t.eventType] ?? "vigil.events.finding.\(name)", "finding.\(name)", FastJSON.object(data)))
        }
        try await tx.emitAllRaw(events, tenantId: tenantId)
    }
}

/// Consumes `vigil.events.scan.results` and `vigil.events.scan.completed` durably. A batch is applied
/// once (its event id is recorded in the same transaction); a completed scan resolves findings only
/// when the scan was complete and every result batch of it has been applied.
struct Ingestor: Sendable {
    let store: Store
    let catalog: RuleCatalog
    let logger: Logger

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        do {
            switch m.subject {
            case "vigil.events.scan.results":
                let env = try JSON.decode(Envelope<ScanResultsBatch>.self, from: m.data)
                guard let tenant = env.tenantId else { return .drop }
                try await ingest(env.data, eventId: env.id, tenantId: tenant)
                return .ack
            case "vigil.events.scan.completed":
                let env = try JSON.decode(Envelope<ScanCompleted>.self, from: m.data)
                guard let tenant = env.tenantId else { return .drop }
                return try await complete(env.data, tenantId: tenant) ? .ack : .retry(after: .seconds(1))
            default:
                return .ack
            }
        } catch let e as DecodingError {
            logger.error("undecodable scan event dropped", metadata: ["subject": "\(m.subject)", "error": "\(e)"])
            return .drop
        } catch {
            logger.warning("ingestion failed; will retry", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
            return .retry(after: StreamConsumer.backoff(attempt: m.deliveryCount, cap: .seconds(60)))
        }
    }

    /// Applies one results batch: rule PASS/FAIL counts, finding upserts (new → open, resolved → reopened),
    /// suppression rules on new findings, lifecycle events.
    func ingest(_ b: ScanResultsBatch, eventId: String, tenantId: String) async throws {
        try await store.transaction(.tenant(tenantId)) { tx in
            guard try await tx.one("""
                INSERT INTO findings.ingested_events (event_id, tenant_id, scan_id, part_service, part_region, results)
                VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING event_id
                """, [eventId, tenantId, b.scanId, b.service, b.region, b.results.count]) != nil else { return }
            try await Self.apply(tx, tenantId: tenantId, batch: b, eventId: eventId)
        }
    }

    static func apply(_ tx: Transaction, tenantId: String, batch b: ScanResultsBatch, eventId: String) async throws {
        struct Count: Encodable { var ruleId: String; var passed: Int; var failed: Int }
        var counts: [String: (Int, Int)] = [:]
        for r in b.results { counts[r.ruleId, default: (0, 0)].0 += r.status == "PASS" ? 1 : 0; counts[r.ruleId, default: (0, 0)].1 += r.status == "FAIL" ? 1 : 0 }
        // Insert-only, one row per (batch, rule): concurrent batches of a scan never wait on each other.
        _ = try await tx.query("""
            INSERT INTO findings.rule_counts (tenant_id, scan_id, event_id, connection_id, part_service, part_region, rule_id, passed, failed)
            SELECT $1, $2, $7, $3, $4, $5, x.rule_id, x.passed, x.failed FROM jsonb_to_recordset($6::jsonb) AS x(rule_id text, passed int, failed int)
            """, [tenantId, b.scanId, b.connectionId, b.service, b.region,
                  try JSONParameter(counts.map { Count(ruleId: $0.key, passed: $0.value.0, failed: $0.value.1) }), eventId])
        let fails = b.results.filter { $0.status == "FAIL" }
        guard !fails.isEmpty else { return }
        var json = "["
        json.reserveCapacity(fails.count * 400)
        for (i, r) in fails.enumerated() {
            if i > 0 { json.append(",") }
            let evidence = r.evidence.isEmpty ? "{}" : String(decoding: (try? JSON.encode(r.evidence)) ?? Data("{}".utf8), as: UTF8.self)
            let tags = (r.tags ?? [:]).isEmpty ? "{}" : String(decoding: (try? JSON.encode(r.tags ?? [:])) ?? Data("{}".utf8), as: UTF8.self)
            FastJSON.object([("fingerprint", .string(r.fingerprint)), ("rule_id", .string(r.ruleId)), ("severity", .string(r.severity.rawValue)),
                             ("severity_rank", .int(r.severity.rank)), ("title", .string(r.title)), ("resource_id", .string(r.resourceId)),
                             ("resource_type", .string(r.resourceType)), ("resource_name", .string(r.resourceName)), ("region", .string(r.region)),
                             ("service", .string(r.service)), ("evidence", .raw(evidence)), ("tags", .raw(tags)),
                             ("savings", .number(r.estimatedMonthlySavings))], into: &json)
        }
        json.append("]")
        let fingerprints = fails.map(\.fingerprint)
        // Lock and read what exists, then upsert all in one statement; new rows and resolved ones that
        // fail again are the transitions.
        var previous: [String: String] = [:]
        for row in try await tx.query("""
            SELECT fingerprint, status FROM findings.findings WHERE tenant_id = $1 AND fingerprint = ANY($2::text[]) FOR UPDATE
            """, [tenantId, ArrayParameter(fingerprints)]) {
            previous[try row.string("fingerprint")] = try row.string("status")
        }
        let upserted = try await tx.query("""
            WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(fingerprint text, rule_id text, severity text, severity_rank int,
                         title text, resource_id text, resource_type text, resource_name text, region text, service text, evidence jsonb,
                         tags jsonb, savings numeric))
            INSERT INTO findings.findings AS f (tenant_id, fingerprint, connection_id, rule_id, provider, service, resource_id, resource_type,
              resource_name, region, severity, severity_rank, title, status, evidence, tags, savings, part_service, part_region,
              first_scan_id, last_scan_id)
            SELECT $2, x.fingerprint, $3, x.rule_id, $4, x.service, x.resource_id, x.resource_type, x.resource_name, x.region, x.severity,
              x.severity_rank, x.title, 'open', coalesce(x.evidence, '{}'), coalesce(x.tags, '{}'), x.savings, $5, $6, $7, $7 FROM x
            ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET last_seen_at = now(), last_scan_id = excluded.last_scan_id,
              severity = excluded.severity, severity_rank = excluded.severity_rank, title = excluded.title, evidence = excluded.evidence,
              tags = excluded.tags, savings = excluded.savings, resource_name = excluded.resource_name, updated_at = now(),
              status = CASE WHEN f.status = 'resolved' THEN 'open' ELSE f.status END,
              resolved_at = CASE WHEN f.status = 'resolved' THEN NULL ELSE f.resolved_at END,
              status_reason = CASE WHEN f.status = 'resolved' THEN 'failed again in a scan' ELSE f.status_reason END
            RETURNING f.id, f.fingerprint, f.rule_id, f.severity, f.resource_id, f.title, (f.xmax = 0) AS inserted
            """, [JSONParameter(raw: Data(json.utf8)), tenantId, b.connectionId, b.provider, b.service, b.region, b.scanId])
        var transitions: [Transition] = []
        for row in upserted {
            let inserted = try row.bool("inserted")
            let before = previous[try row.string("fingerprint")]
            guard inserted || before == "resolved" else { continue }
            transitions.append(Transition(findingId: try row.string("id"), connectionId: b.connectionId, ruleId: try row.string("rule_id"),
                                          severity: try row.string("severity"), eventType: inserted ? "opened" : "reopened",
                                          from: inserted ? nil : "resolved", to: "open", actor: nil, reason: inserted ? nil : "failed again in a scan",
                                          scanId: b.scanId, resourceId: try row.string("resource_id"), title: try row.string("title")))
        }
        guard !transitions.isEmpty else { return }
        // Suppression rules apply to findings that are new or back.
        let suppressed = try await tx.query("""
            UPDATE findings.findings f SET status = 'suppressed', suppression_rule_id = s.id, status_reason = s.reason,
              status_actor = 'suppression-rule:' || s.id, status_expires_at = s.expires_at, updated_at = now()
            FROM findings.suppression_rules s
            WHERE f.tenant_id = $1 AND f.id = ANY($2::uuid[]) AND s.tenant_id = $1 AND \(SuppressionHandlers.matchSQL)
            RETURNING f.id, f.rule_id, f.severity, f.resource_id, f.title, s.reason, s.id AS rule
            """, [tenantId, ArrayParameter(transitions.map(\.findingId))])
        for row in suppressed {
            transitions.append(Transition(findingId: try row.string("id"), connectionId: b.connectionId, ruleId: try row.string("rule_id"),
                                          severity: try row.string("severity"), eventType: "suppressed", from: "open", to: "suppressed",
                                          actor: "suppression-rule:" + (try row.string("rule")), reason: row.optionalString("reason"),
                                          scanId: b.scanId, resourceId: try row.string("resource_id"), title: try row.string("title")))
        }
        try await Lifecycle.record(tx, tenantId: tenantId, transitions)
    }

    /// Returns false while result batches of the scan are still missing (the message is retried).
    func complete(_ c: ScanCompleted, tenantId: String) async throws -> Bool {
        try await store.transaction(.tenant(tenantId)) { tx in
            if try await tx.one("SELECT 1 FROM findings.scans WHERE tenant_id = $1 AND scan_id = $2", [tenantId, c.scanId]) != nil { return true }
            let completedParts = c.parts.filter { $0.status == "completed" }
            if c.status == "completed" {
                var got: [String: Int] = [:]
                for row in try await tx.query("""
                    SELECT part_service, part_region, sum(results)::int AS n FROM findings.ingested_events WHERE tenant_id = $1 AND scan_id = $2
                    GROUP BY 1, 2
                    """, [tenantId, c.scanId]) {
                    got["\(try row.string("part_service"))|\(try row.string("part_region"))"] = try row.int("n")
                }
                for p in completedParts where (got["\(p.service)|\(p.region)"] ?? 0) < p.checks { return false }
            }
            _ = try await tx.query("""
                INSERT INTO findings.scans (tenant_id, scan_id, connection_id, status, complete, resources, checks, parts)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)
                """, [tenantId, c.scanId, c.connectionId, c.status, c.complete, c.resourcesScanned ?? 0, c.checksEvaluated ?? 0,
                      try JSONParameter(c.parts)])
            // Only a complete scan resolves, and only what it evaluated: rules it ran, in parts it covered.
            guard c.status == "completed" && c.complete && !completedParts.isEmpty else { return true }
            let resolved = try await tx.query("""
                WITH parts AS (SELECT * FROM jsonb_to_recordset($4::jsonb) AS p(service text, region text)),
                target AS (
                  SELECT f.id, f.status FROM findings.findings f
                  WHERE f.tenant_id = $1 AND f.connection_id = $2 AND f.status IN ('open', 'suppressed', 'accepted_risk') AND f.last_scan_id <> $3
                    AND EXISTS (SELECT 1 FROM parts p WHERE p.service = f.part_service AND p.region = f.part_region)
                    AND EXISTS (SELECT 1 FROM findings.rule_counts rc WHERE rc.tenant_id = $1 AND rc.scan_id = $3 AND rc.rule_id = f.rule_id
                                AND rc.part_service = f.part_service AND rc.part_region = f.part_region)
                  FOR UPDATE)
                UPDATE findings.findings f SET status = 'resolved', resolved_at = now(), updated_at = now(),
                  status_reason = 'passed or gone in scan ' || $3, status_expires_at = NULL, suppression_rule_id = NULL
                FROM target WHERE f.id = target.id
                RETURNING f.id, f.rule_id, f.severity, f.resource_id, f.title, target.status AS previous
                """, [tenantId, c.connectionId, c.scanId, try JSONParameter(completedParts.map { ["service": $0.service, "region": $0.region] })])
            try await Lifecycle.record(tx, tenantId: tenantId, try resolved.map { row in
                Transition(findingId: try row.string("id"), connectionId: c.connectionId, ruleId: try row.string("rule_id"),
                           severity: try row.string("severity"), eventType: "resolved", from: row.optionalString("previous"), to: "resolved",
                           actor: nil, reason: "passed or gone in a complete scan", scanId: c.scanId, resourceId: try row.string("resource_id"),
                           title: try row.string("title"))
            })
            return true
        }
    }
}

/// Returns suppressed and risk-accepted findings to `open` when their expiry passes.
struct ExpirySweeper: Sendable {
    let store: Store

    func sweep() async throws -> Int {
        let tenants = try await store.query(.crossTenant, """
            SELECT DISTINCT tenant_id FROM findings.findings WHERE status IN ('suppressed', 'accepted_risk') AND status_expires_at < now()
            """).map { try $0.string("tenant_id") }
        var n = 0
        for t in tenants {
            n += try await store.transaction(.tenant(t)) { tx in
                let rows = try await tx.query("""
                    WITH target AS (SELECT id, status FROM findings.findings WHERE tenant_id = $1 AND status IN ('suppressed', 'accepted_risk')
                                    AND status_expires_at < now() FOR UPDATE)
                    UPDATE findings.findings f SET status = 'open', status_reason = 'expired: ' || coalesce(f.status_reason, ''),
                      status_expires_at = NULL, suppression_rule_id = NULL, status_actor = NULL, updated_at = now()
                    FROM target WHERE f.id = target.id
                    RETURNING f.id, f.connection_id, f.rule_id, f.severity, f.resource_id, f.title, target.status AS previous
                    """, [t])
                try await Lifecycle.record(tx, tenantId: t, try rows.map { row in
                    Transition(findingId: try row.string("id"), connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
                               severity: try row.string("severity"), eventType: "expired", from: row.optionalString("previous"), to: "open",
                               actor: nil, reason: "the suppression or risk acceptance expired", scanId: nil,
                               resourceId: try row.string("resource_id"), title: try row.string("title"))
                })
                return rows.count
            }
        }
        return n
    }
}
