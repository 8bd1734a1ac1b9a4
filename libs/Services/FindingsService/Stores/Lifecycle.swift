import Contracts
import Foundation
import Store
import VigilCore

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
    /// Events per bus message, at most (bytes of their JSON; one event is about 500 bytes).
    static let batchBytes = 512 * 1024

    /// SQL continuing a `WITH … t AS (…)`: inserts a finding event per row of `t` and writes the bus
    /// events as `finding.batch` messages (`data.findings[]`, each the event a subscriber used to get
    /// alone on `vigil.events.finding.<type>`), one outbox row; returns one row with `events`. `t` has the columns finding_id,
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
        items AS (
          SELECT at, event_id, '{"id":"' || event_id || '","type":"finding.' || name ||
              '","occurred_at":"' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","tenant_id":"' || $1::text ||
              '","data":{' || concat_ws(',', '"finding_id":"' || finding_id || '"', '"event_id":"' || event_id || '"',
                '"connection_id":"' || connection_id || '"', '"rule_id":' || to_json(rule_id), '"severity":' || to_json(severity),
                '"status":' || to_json(to_status), '"resource_id":' || to_json(resource_id), '"title":' || to_json(title),
                '"previous_status":' || to_json(from_status), '"actor":' || to_json(actor), '"reason":' || to_json(reason),
                '"scan_id":"' || scan_id || '"') || '}}' AS item, actor, scan_id
          FROM te),
        -- One bus message per \(batchBytes / 1024) KB of events (a result batch of a few hundred findings is one
        -- message; a resolution of a million is a few thousand), well under NATS's 1 MB payload limit.
        chunked AS (
          SELECT *, (sum(octet_length(item)) OVER (ORDER BY at, event_id) - octet_length(item)) / \(batchBytes) AS chunk FROM items),
        batches AS (
          SELECT chunk, findings.uuid7() AS batch_id, min(at) AS at, count(*) AS n,
            string_agg(item, ',' ORDER BY at, event_id) AS list, max(actor) AS actor,
            CASE WHEN count(DISTINCT scan_id) = 1 AND count(scan_id) = count(*) THEN min(scan_id::text) END AS scan_id
          FROM chunked GROUP BY chunk),
        outbox AS (\(tx.outboxBatchInsert(line: """
            'vigil.events.finding.batch ' || batch_id || ' {"id":"' || batch_id || '","type":"finding.batch","occurred_at":"' ||
              to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","tenant_id":"' || $1::text || '","data":{' ||
              concat_ws(',', '"count":' || n, '"scan_id":"' || scan_id || '"', '"actor":' || to_json(actor)) ||
              ',"findings":[' || list || ']}}'
            """, from: "batches", order: "chunk", headersParam: headersParam)) RETURNING 1)
        SELECT (SELECT count(*) FROM te)::int AS events
        """
    }

    /// Records transitions built in Swift (changes made through the API, remediation outcomes).
    static func record(_ tx: Transaction, tenantId: String, _ ts: [Transition]) async throws {
        guard !ts.isEmpty else { return }
        var rows: [UInt8] = [0x5B]
        for (i, t) in ts.enumerated() {
            if i > 0 { rows.append(0x2C) }
            FastJSON.object(
                [
                    ("finding_id", .string(t.findingId)), ("connection_id", .string(t.connectionId)), ("rule_id", .string(t.ruleId)),
                    ("severity", .string(t.severity)), ("event_type", .string(t.eventType)), ("from_status", .string(t.from)),
                    ("to_status", .string(t.to)), ("actor", .string(t.actor)), ("reason", .string(t.reason)), ("scan_id", .string(t.scanId)),
                    ("resource_id", .string(t.resourceId)), ("title", .string(t.title)), ("ord", .int(i)),
                ], into: &rows)
        }
        rows.append(0x5D)
        try await run(
            tx,
            """
            WITH t AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(finding_id uuid, connection_id uuid, rule_id text, severity text,
              event_type text, from_status text, to_status text, actor text, reason text, scan_id uuid, resource_id text, title text, ord int))
            """, [tenantId, JSONParameter(raw: Data(rows))])
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
