import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

/// Where a scan is in its life.
enum ScanStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, completed, failed, canceled

    var isTerminal: Bool { self == .completed || self == .failed || self == .canceled }
}

/// Where one part (a service in a region, or whatever unit a provider collects) is.
enum PartStatus: String, Codable, Sendable {
    case pending, running, completed, failed
    /// The endpoint does not offer the API (e.g. moto lacks it): neither a pass nor a failure.
    case unavailable

    var isDone: Bool { self == .completed || self == .failed || self == .unavailable }
}

/// Every statement on `scans.scans`, `scans.scan_parts` and `scans.scan_results`: the scans aggregate,
/// for the API role (trigger, list, progress, cancel, results) and the worker role (claim, parts, finish).
struct ScanStore: Sendable {
    let db: Store

    static func view(_ r: Row) throws -> ScanView {
        ScanView(
            id: try r.string("id"), connectionId: try r.string("connection_id"), status: try r.string("status"),
            regions: try r.stringArray("regions"), services: try r.stringArray("services"),
            createdAt: try r.date("created_at"), startedAt: r.optionalDate("started_at"), completedAt: r.optionalDate("completed_at"),
            resourcesScanned: try r.int("resources_scanned"), checksEvaluated: try r.int("checks_evaluated"),
            findingsCount: FindingsCount(
                critical: try r.int("critical_count"), high: try r.int("high_count"),
                medium: try r.int("medium_count"), low: try r.int("low_count"), info: try r.int("info_count")),
            estimatedMonthlySavings: Double(r.optionalString("savings") ?? "0") ?? 0, complete: try r.bool("complete"),
            accountId: r.optionalString("account_id"), error: r.optionalString("error"), attempts: try r.int("attempts"),
            requestedBy: r.optionalString("requested_by"), apiCalls: try r.int("api_calls"), apiRetries: try r.int("api_retries"),
            mode: r.optionalString("mode"), findingsIngested: r.optionalDate("findings_ingested_at") != nil,
            findingsIngestedAt: r.optionalDate("findings_ingested_at"))
    }

    /// The findings service applied every result of the scan.
    func markIngested(scanId: String, tenantId: String) async throws {
        try await db.query(
            .tenant(tenantId), "UPDATE scans.scans SET findings_ingested_at = coalesce(findings_ingested_at, now()) WHERE id = $1 AND tenant_id = $2",
            [scanId, tenantId])
    }

    static func part(_ r: Row) throws -> ScanPartReport {
        ScanPartReport(
            service: try r.string("service"), region: try r.string("region"), status: try r.string("status"),
            resources: try r.int("resources"), checks: try r.int("checks"), failures: try r.int("failures"), error: r.optionalString("error"))
    }

    static func status(_ r: Row) throws -> ScanStatus { try r.value("status") }

    // MARK: API role

    func insert(
        _ tx: Transaction, id: String, tenantId: String, connectionId: String, regions: [String], services: [String], requestedBy: String,
        mode: String = "passive"
    ) async throws -> ScanView {
        try Self.view(
            try await tx.single(
                """
                INSERT INTO scans.scans (id, tenant_id, connection_id, status, regions, services, requested_by, mode)
                VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7) RETURNING *
                """, [id, tenantId, connectionId, ArrayParameter(regions), ArrayParameter(services), requestedBy, mode]))
    }

    func list(
        _ page: Pagination, tenantId: String, connectionId: String?, statuses: [ScanStatus]?, service: String? = nil
    ) async throws -> Page<ScanView> {
        var filter = "tenant_id = $1"
        var values: [any SQLParameter] = [tenantId]
        if let service {
            values.append(service)
            filter += " AND $\(values.count) = ANY(services)"
        }
        if let connectionId {
            values.append(connectionId)
            filter += " AND connection_id = $\(values.count)"
        }
        if let statuses {
            values.append(ArrayParameter(statuses.map(\.rawValue)))
            filter += " AND status = ANY($\(values.count)::text[])"
        }
        return try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "scans.scans", filter: filter, values, map: Self.view)
        }
    }

    func find(id: String, tenantId: String) async throws -> ScanView? {
        try await db.query(.tenant(tenantId), "SELECT * FROM scans.scans WHERE id = $1 AND tenant_id = $2", [id, tenantId]).first.map(Self.view)
    }

    func parts(scanId: String, tenantId: String) async throws -> [ScanPartReport] {
        try await db.query(
            .tenant(tenantId), "SELECT * FROM scans.scan_parts WHERE scan_id = $1 AND tenant_id = $2 ORDER BY service, region",
            [scanId, tenantId]
        ).map(Self.part)
    }

    func parts(_ tx: Transaction, scanId: String) async throws -> [ScanPartReport] {
        try await tx.query("SELECT * FROM scans.scan_parts WHERE scan_id = $1 ORDER BY service, region", [scanId]).map(Self.part)
    }

    /// Locks the scan row for the rest of the transaction and returns its status (nil: no such scan).
    func lockStatus(_ tx: Transaction, id: String, tenantId: String? = nil) async throws -> ScanStatus? {
        let row =
            if let tenantId {
                try await tx.one("SELECT status FROM scans.scans WHERE id = $1 AND tenant_id = $2 FOR UPDATE", [id, tenantId])
            } else {
                try await tx.one("SELECT status FROM scans.scans WHERE id = $1 FOR UPDATE", [id])
            }
        return try row.map(Self.status)
    }

    func markCanceled(_ tx: Transaction, id: String, tenantId: String, reason: String) async throws -> ScanView {
        try Self.view(
            try await tx.single(
                "UPDATE scans.scans SET status = 'canceled', completed_at = now(), error = $3 WHERE id = $1 AND tenant_id = $2 RETURNING *",
                [id, tenantId, reason]))
    }

    /// Cancels every queued or running scan of a connection and returns them.
    func cancelAll(_ tx: Transaction, tenantId: String, connectionId: String, reason: String) async throws -> [ScanView] {
        try await tx.query(
            """
            UPDATE scans.scans SET status = 'canceled', completed_at = now(), error = $3
            WHERE tenant_id = $1 AND connection_id = $2 AND status IN ('queued', 'running') RETURNING *
            """, [tenantId, connectionId, reason]
        ).map(Self.view)
    }

    struct ResultFilter {
        var status: String?
        var severities: [String]?
        var ruleId: String?
    }

    func results(_ page: Pagination, tenantId: String, scanId: String, _ f: ResultFilter) async throws -> Page<ScanResultView> {
        var filter = "tenant_id = $1 AND scan_id = $2"
        var values: [any SQLParameter] = [tenantId, scanId]
        if let s = f.status {
            values.append(s)
            filter += " AND status = $\(values.count)"
        }
        if let s = f.severities {
            values.append(ArrayParameter(s))
            filter += " AND severity = ANY($\(values.count)::text[])"
        }
        if let r = f.ruleId {
            values.append(r)
            filter += " AND rule_id = $\(values.count)"
        }
        return try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "scans.scan_results", filter: filter, values, map: Self.result)
        }
    }

    static func result(_ r: Row) throws -> ScanResultView {
        ScanResultView(
            id: try r.string("id"), fingerprint: try r.string("fingerprint"), ruleId: try r.string("rule_id"),
            status: try r.string("status"), severity: try r.string("severity"), title: try r.string("title"),
            resourceId: try r.string("resource_id"), resourceType: try r.string("resource_type"),
            resourceName: try r.string("resource_name"), region: try r.string("region"), service: try r.string("service"),
            evidence: try r.json("evidence"), estimatedMonthlySavings: r.optionalString("savings").flatMap(Double.init),
            createdAt: try r.date("created_at"))
    }

    /// A scan's failing results, most severe first (at most `limit`).
    func failing(tenantId: String, scanId: String, limit: Int) async throws -> [ScanResultView] {
        try await db.query(
            .tenant(tenantId),
            """
            SELECT * FROM scans.scan_results WHERE tenant_id = $1 AND scan_id = $2 AND status = 'FAIL'
            ORDER BY array_position(ARRAY['critical','high','medium','low','info'], severity), rule_id, resource_id LIMIT \(limit)
            """, [tenantId, scanId]
        ).map(Self.result)
    }

    // MARK: worker role

    /// Serializes claims of one workspace's scans (until the transaction ends), so the running count is exact.
    func serializeClaims(_ tx: Transaction, tenantId: String) async throws {
        _ = try await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["scan-tenant:" + tenantId])
    }

    /// Status and attempts of a scan, locked for the claim.
    func lockForClaim(_ tx: Transaction, id: String) async throws -> (status: ScanStatus, attempts: Int)? {
        guard let row = try await tx.one("SELECT status, attempts FROM scans.scans WHERE id = $1 FOR UPDATE", [id]) else { return nil }
        return (try Self.status(row), try row.int("attempts"))
    }

    func runningCount(_ tx: Transaction, tenantId: String) async throws -> Int {
        try await tx.single("SELECT count(*) AS n FROM scans.scans WHERE tenant_id = $1 AND status = 'running'", [tenantId]).int("n")
    }

    func markRunning(_ tx: Transaction, id: String, attempt: Int) async throws {
        _ = try await tx.query(
            """
            UPDATE scans.scans SET status = 'running', attempts = $2, started_at = coalesce(started_at, now()), heartbeat_at = now()
            WHERE id = $1
            """, [id, attempt])
    }

    func attempts(id: String, tenantId: String) async throws -> Int {
        try await db.query(.tenant(tenantId), "SELECT attempts FROM scans.scans WHERE id = $1", [id]).first?.int("attempts") ?? 0
    }

    func lastError(id: String, tenantId: String) async throws -> String? {
        try await db.query(.tenant(tenantId), "SELECT error FROM scans.scans WHERE id = $1", [id]).first?.optionalString("error")
    }

    /// Notes why the last attempt of a running scan failed (the next attempt may still succeed).
    /// The attempt ended because Vigil's own database went away, not because of the scan: it is not counted.
    func refundAttempt(id: String, tenantId: String) async throws {
        try await db.query(
            .tenant(tenantId), "UPDATE scans.scans SET attempts = greatest(attempts - 1, 0) WHERE id = $1 AND status = 'running'", [id])
    }

    func recordAttemptError(id: String, tenantId: String, error: String) async throws {
        try await db.query(.tenant(tenantId), "UPDATE scans.scans SET error = $2 WHERE id = $1 AND status = 'running'", [id, error])
    }

    /// The worker is alive; returns the scan's status (a cancel shows here).
    func heartbeat(id: String, tenantId: String) async throws -> ScanStatus? {
        try await db.query(.tenant(tenantId), "UPDATE scans.scans SET heartbeat_at = now() WHERE id = $1 RETURNING status", [id]).first
            .map(Self.status)
    }

    func setAccount(id: String, tenantId: String, account: String) async throws {
        try await db.query(.tenant(tenantId), "UPDATE scans.scans SET account_id = $2 WHERE id = $1", [id, account])
    }

    /// The regions and services a scan was asked for.
    func target(id: String, tenantId: String) async throws -> (regions: [String], services: [String], mode: String) {
        let row = try await db.single(.tenant(tenantId), "SELECT regions, services, mode FROM scans.scans WHERE id = $1", [id])
        return (try row.stringArray("regions"), try row.stringArray("services"), try row.string("mode"))
    }

    /// Records the planned parts once (a redelivered job finds them there) and returns those not done yet.
    func plan(scanId: String, tenantId: String, parts: [(service: String, region: String)]) async throws -> [(service: String, region: String)] {
        try await db.query(
            .tenant(tenantId),
            """
            INSERT INTO scans.scan_parts (scan_id, tenant_id, service, region, status)
            SELECT $1, $2, s, r, 'pending' FROM unnest($3::text[], $4::text[]) AS t(s, r)
            ON CONFLICT (scan_id, service, region) DO NOTHING
            """, [scanId, tenantId, ArrayParameter(parts.map(\.service)), ArrayParameter(parts.map(\.region))])
        return try await db.query(
            .tenant(tenantId),
            """
            SELECT service, region FROM scans.scan_parts WHERE scan_id = $1 AND status NOT IN ('completed', 'failed', 'unavailable')
            ORDER BY service, region
            """, [scanId]
        ).map { (try $0.string("service"), try $0.string("region")) }
    }

    func addAPICalls(id: String, tenantId: String, calls: Int, retries: Int) async throws {
        try await db.query(
            .tenant(tenantId), "UPDATE scans.scans SET api_calls = api_calls + $2, api_retries = api_retries + $3 WHERE id = $1",
            [id, calls, retries])
    }

    func markPartRunning(scanId: String, tenantId: String, service: String, region: String) async throws {
        try await db.query(
            .tenant(tenantId),
            "UPDATE scans.scan_parts SET status = 'running', started_at = now() WHERE scan_id = $1 AND service = $2 AND region = $3",
            [scanId, service, region])
    }

    /// A part that ended without results (`failed` or `unavailable`), unless it was already written.
    func markPartEnded(scanId: String, tenantId: String, service: String, region: String, status: PartStatus, error: String) async throws {
        try await db.query(
            .tenant(tenantId),
            """
            UPDATE scans.scan_parts SET status = $4, error = $5, completed_at = now()
            WHERE scan_id = $1 AND service = $2 AND region = $3 AND status <> 'completed'
            """, [scanId, service, region, status.rawValue, error])
    }

    /// Marks a part completed with its counts; false when it already was (a worker that died before acking wrote it).
    func markPartCompleted(
        _ tx: Transaction, scanId: String, service: String, region: String, resources: Int, checks: Int, failures: Int
    ) async throws -> Bool {
        try await tx.execute(
            """
            UPDATE scans.scan_parts SET status = 'completed', resources = $4, checks = $5, failures = $6, error = NULL, completed_at = now()
            WHERE scan_id = $1 AND service = $2 AND region = $3 AND status <> 'completed'
            """, [scanId, service, region, resources, checks, failures]) == 1
    }

    /// Stores a part's evaluated results (a repeat of the same fingerprint is ignored).
    func insertResults(_ tx: Transaction, scanId: String, tenantId: String, _ results: [ScanResult]) async throws {
        guard !results.isEmpty else { return }
        _ = try await tx.query(
            """
            INSERT INTO scans.scan_results (scan_id, tenant_id, fingerprint, rule_id, status, severity, title, resource_id,
              resource_type, resource_name, region, service, evidence, savings)
            SELECT $1, $2, x.fingerprint, x.rule_id, x.status, x.severity, x.title, x.resource_id, x.resource_type, x.resource_name,
              x.region, x.service, coalesce(x.evidence, '{}'::jsonb), x.estimated_monthly_savings
            FROM jsonb_to_recordset($3::jsonb) AS x(fingerprint text, rule_id text, status text, severity text, title text,
              resource_id text, resource_type text, resource_name text, region text, service text, evidence jsonb,
              estimated_monthly_savings numeric)
            ON CONFLICT (scan_id, fingerprint) DO NOTHING
            """, [scanId, tenantId, try JSONParameter(results)])
    }

    /// Adds a written part's counts to the scan's running totals.
    func addCounts(_ tx: Transaction, id: String, resources: Int, checks: Int, failures: [Severity: Int], savings: Double) async throws {
        _ = try await tx.query(
            """
            UPDATE scans.scans SET resources_scanned = resources_scanned + $2, checks_evaluated = checks_evaluated + $3,
              critical_count = critical_count + $4, high_count = high_count + $5, medium_count = medium_count + $6,
              low_count = low_count + $7, info_count = info_count + $8, savings = savings + $9
            WHERE id = $1
            """,
            [
                id, resources, checks, failures[.critical] ?? 0, failures[.high] ?? 0, failures[.medium] ?? 0,
                failures[.low] ?? 0, failures[.info] ?? 0, savings,
            ])
    }

    /// Ends a scan with exact counts recomputed from its stored results and completed parts.
    func finalize(_ tx: Transaction, id: String, status: ScanStatus, error: String?, complete: Bool) async throws -> ScanView {
        try Self.view(
            try await tx.single(
                """
                WITH r AS (SELECT count(*) AS checks,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'critical') AS c,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'high') AS h,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'medium') AS m,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'low') AS l,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'info') AS i,
                    coalesce(sum(savings) FILTER (WHERE status = 'FAIL'), 0) AS s
                  FROM scans.scan_results WHERE scan_id = $1),
                p AS (SELECT coalesce(sum(resources), 0) AS n FROM scans.scan_parts WHERE scan_id = $1 AND status = 'completed')
                UPDATE scans.scans SET status = $2, error = $3, complete = $4, completed_at = now(), checks_evaluated = r.checks,
                  critical_count = r.c, high_count = r.h, medium_count = r.m, low_count = r.l, info_count = r.i, savings = r.s,
                  resources_scanned = p.n
                FROM r, p WHERE id = $1 RETURNING scans.scans.*
                """, [id, status.rawValue, error, complete]))
    }

    /// Deletes a finished scan's record, parts and results (the findings service keeps its own history
    /// and every finding event); false when the workspace has no such scan.
    static func delete(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.execute("DELETE FROM scans.scan_results WHERE scan_id = $1 AND tenant_id = $2", [id, tenantId])
        try await tx.execute("DELETE FROM scans.scan_parts WHERE scan_id = $1 AND tenant_id = $2", [id, tenantId])
        return try await tx.execute("DELETE FROM scans.scans WHERE id = $1 AND tenant_id = $2", [id, tenantId]) == 1
    }
}
