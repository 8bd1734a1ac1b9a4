import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// What became of one due run of a schedule.
enum RunOutcome: String, Codable, Sendable, CaseIterable {
    /// Claimed by a scheduler, the scan not yet queued.
    case pending
    /// The scan was queued (its id is the run's id).
    case started
    /// The plan's scan quota (or connection limit) did not allow it.
    case skippedQuota = "skipped_quota"
    /// Anything else stopped it; the reason says what.
    case failed
}

/// Why a run happened.
enum RunTrigger: String, Codable, Sendable {
    /// On time.
    case schedule
    /// The one run made up for every run missed while no scheduler was up.
    case catchUp = "catch_up"
    /// `run-now`.
    case manual
}

struct ScheduleView: Codable, Sendable {
    var id: String
    var name: String
    var connectionId: String
    var cron: String?
    var intervalMinutes: Int?
    var timezone: String
    var enabled: Bool
    var status: String
    var regions: [String]?
    var services: [String]?
    var nextRunAt: Date?
    var lastRunAt: Date?
    var lastOutcome: String?
    var createdBy: String?
    var createdAt: Date
    var updatedAt: Date
}

struct ScheduleRunView: Codable, Sendable {
    var id: String
    var scheduleId: String
    var plannedAt: Date
    var startedAt: Date?
    var trigger: String
    var outcome: String
    var reason: String?
    var scanId: String?
    var scanStatus: String?
    var createdAt: Date
}

/// A schedule as the scheduler needs it: when it repeats and what its scans cover.
struct StoredSchedule: Sendable {
    var id: String
    var tenantId: String
    var connectionId: String
    var timing: ScheduleTiming
    var enabled: Bool
    var regions: [String]?
    var services: [String]?
    var nextRunAt: Date?
}

/// Every statement on `scans.schedules` and `scans.schedule_runs`: schedules for the API, the due-run
/// claim for the scheduler (one replica per run: rows locked with SKIP LOCKED, a unique planned time per
/// schedule) and each run's outcome.
struct ScheduleStore: Sendable {
    let db: Store

    static func view(_ r: Row) throws -> ScheduleView {
        let enabled = try r.bool("enabled")
        return ScheduleView(
            id: try r.string("id"), name: try r.string("name"), connectionId: try r.string("connection_id"), cron: r.optionalString("cron"),
            intervalMinutes: r.optionalInt("interval_minutes"), timezone: try r.string("timezone"), enabled: enabled,
            status: enabled ? "active" : "paused", regions: r.isNull("regions") ? nil : try r.stringArray("regions"),
            services: r.isNull("services") ? nil : try r.stringArray("services"), nextRunAt: r.optionalDate("next_run_at"),
            lastRunAt: r.optionalDate("last_run_at"), lastOutcome: r.optionalString("last_outcome"), createdBy: r.optionalString("created_by"),
            createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"))
    }

    static func stored(_ r: Row) throws -> StoredSchedule {
        StoredSchedule(
            id: try r.string("id"), tenantId: try r.string("tenant_id"), connectionId: try r.string("connection_id"),
            timing: try ScheduleTiming(
                cron: r.optionalString("cron"), intervalMinutes: r.optionalInt("interval_minutes"), timezone: r.string("timezone")),
            enabled: try r.bool("enabled"), regions: r.isNull("regions") ? nil : try r.stringArray("regions"),
            services: r.isNull("services") ? nil : try r.stringArray("services"), nextRunAt: r.optionalDate("next_run_at"))
    }

    static func run(_ r: Row) throws -> ScheduleRunView {
        ScheduleRunView(
            id: try r.string("id"), scheduleId: try r.string("schedule_id"), plannedAt: try r.date("planned_at"),
            startedAt: r.optionalDate("started_at"), trigger: try r.string("trigger"), outcome: try r.string("outcome"),
            reason: r.optionalString("reason"), scanId: r.optionalString("scan_id"), scanStatus: r.optionalString("scan_status"),
            createdAt: try r.date("created_at"))
    }

    /// A schedule with its last run's outcome.
    static let withLastOutcome = """
        SELECT s.*, (SELECT outcome FROM scans.schedule_runs r WHERE r.schedule_id = s.id ORDER BY r.created_at DESC, r.id DESC LIMIT 1)
          AS last_outcome FROM scans.schedules s
        """

    // MARK: API

    struct Fields: Sendable {
        var name: String
        var connectionId: String
        var timing: ScheduleTiming
        var enabled: Bool
        var regions: [String]?
        var services: [String]?
    }

    func insert(_ tx: Transaction, id: String, tenantId: String, _ f: Fields, nextRunAt: Date?, by actor: String) async throws -> ScheduleView {
        try await tx.execute(
            """
            INSERT INTO scans.schedules (id, tenant_id, connection_id, name, cron, interval_minutes, timezone, enabled, regions, services,
              next_run_at, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text[], $10::text[], $11, $12)
            """,
            [
                id, tenantId, f.connectionId, f.name, f.timing.cron?.source, f.timing.intervalMinutes, f.timing.timezone, f.enabled,
                f.regions.map { ArrayParameter($0) }, f.services.map { ArrayParameter($0) }, nextRunAt, actor,
            ])
        guard let view = try await Self.get(tx, id: id, tenantId: tenantId) else {
            throw ServiceError.internal("the inserted schedule is not readable")
        }
        return view
    }

    static func get(_ tx: Transaction, id: String, tenantId: String) async throws -> ScheduleView? {
        try await tx.one("\(withLastOutcome) WHERE s.id = $1 AND s.tenant_id = $2", [id, tenantId]).map(view)
    }

    func get(id: String, tenantId: String) async throws -> ScheduleView? {
        try await db.transaction(.tenant(tenantId)) { try await Self.get($0, id: id, tenantId: tenantId) }
    }

    /// The schedule locked for a change.
    static func lock(_ tx: Transaction, id: String, tenantId: String) async throws -> (StoredSchedule, name: String)? {
        guard let r = try await tx.one("SELECT * FROM scans.schedules WHERE id = $1 AND tenant_id = $2 FOR UPDATE", [id, tenantId]) else {
            return nil
        }
        return (try stored(r), try r.string("name"))
    }

    func list(_ page: Pagination, tenantId: String, connectionId: String?) async throws -> Page<ScheduleView> {
        var filter = "s.tenant_id = $1"
        var values: [any SQLParameter] = [tenantId]
        if let connectionId {
            values.append(connectionId)
            filter += " AND s.connection_id = $2"
        }
        return try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(
                tx,
                columns:
                    "s.*, (SELECT outcome FROM scans.schedule_runs r WHERE r.schedule_id = s.id ORDER BY r.created_at DESC, r.id DESC LIMIT 1) "
                    + "AS last_outcome",
                from: "scans.schedules s", filter: filter, values, alias: "s.", map: Self.view)
        }
    }

    static func update(_ tx: Transaction, id: String, _ f: Fields, nextRunAt: Date?) async throws {
        try await tx.execute(
            """
            UPDATE scans.schedules SET connection_id = $2, name = $3, cron = $4, interval_minutes = $5, timezone = $6, enabled = $7,
              regions = $8::text[], services = $9::text[], next_run_at = $10, updated_at = now()
            WHERE id = $1
            """,
            [
                id, f.connectionId, f.name, f.timing.cron?.source, f.timing.intervalMinutes, f.timing.timezone, f.enabled,
                f.regions.map { ArrayParameter($0) }, f.services.map { ArrayParameter($0) }, nextRunAt,
            ])
    }

    static func setEnabled(_ tx: Transaction, id: String, enabled: Bool, nextRunAt: Date?) async throws {
        try await tx.execute(
            "UPDATE scans.schedules SET enabled = $2, next_run_at = $3, updated_at = now() WHERE id = $1", [id, enabled, nextRunAt])
    }

    static func delete(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.execute("DELETE FROM scans.schedules WHERE id = $1 AND tenant_id = $2", [id, tenantId]) == 1
    }

    func runs(_ page: Pagination, scheduleId: String, tenantId: String) async throws -> Page<ScheduleRunView> {
        try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(
                tx, columns: "r.*, sc.status AS scan_status",
                from: "scans.schedule_runs r LEFT JOIN scans.scans sc ON sc.id = r.scan_id",
                filter: "r.tenant_id = $1 AND r.schedule_id = $2", [tenantId, scheduleId], alias: "r.", map: Self.run)
        }
    }

    static func count(_ tx: Transaction, tenantId: String) async throws -> Int {
        try await tx.single("SELECT count(*) AS n FROM scans.schedules WHERE tenant_id = $1", [tenantId]).int("n")
    }

    // MARK: scheduler

    /// Claims up to `limit` due schedules in every workspace: each gets one pending run (planned at its
    /// due time, however late) and its next run after `now`, in one transaction, rows locked with SKIP
    /// LOCKED so two schedulers never claim the same run. Returns the new runs' (id, tenant).
    func claimDue(now: Date, lateAfter: TimeInterval, limit: Int = 100) async throws -> [(id: String, tenantId: String)] {
        try await db.transaction(.crossTenant) { tx in
            let due = try await tx.query(
                """
                SELECT * FROM scans.schedules WHERE enabled AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED
                """, [now, limit]
            ).map(Self.stored)
            var runs: [(String, String)] = []
            for s in due {
                guard let planned = s.nextRunAt else { continue }
                let id = ID.make()
                let trigger: RunTrigger = now.timeIntervalSince(planned) > lateAfter ? .catchUp : .schedule
                if try await Self.insertRun(tx, id: id, tenantId: s.tenantId, scheduleId: s.id, plannedAt: planned, trigger: trigger) {
                    runs.append((id, s.tenantId))
                }
                try await tx.execute(
                    "UPDATE scans.schedules SET next_run_at = $2, last_run_at = $3 WHERE id = $1",
                    [s.id, s.timing.next(after: now, anchor: planned), now])
            }
            return runs
        }
    }

    /// A pending run; false when the schedule already has one planned at that time.
    static func insertRun(
        _ tx: Transaction, id: String, tenantId: String, scheduleId: String, plannedAt: Date, trigger: RunTrigger
    ) async throws -> Bool {
        try await tx.one(
            """
            INSERT INTO scans.schedule_runs (id, tenant_id, schedule_id, planned_at, trigger, outcome) VALUES ($1, $2, $3, $4, $5, 'pending')
            ON CONFLICT (schedule_id, planned_at) DO NOTHING RETURNING id
            """, [id, tenantId, scheduleId, plannedAt, trigger.rawValue]) != nil
    }

    /// Pending runs in every workspace, oldest first (new ones and any a stopped scheduler left).
    func pendingRuns(limit: Int = 100) async throws -> [(id: String, tenantId: String)] {
        try await db.query(
            .crossTenant, "SELECT id, tenant_id FROM scans.schedule_runs WHERE outcome = 'pending' ORDER BY created_at LIMIT $1", [limit]
        ).map { (try $0.string("id"), try $0.string("tenant_id")) }
    }

    /// A pending run and its schedule, locked for starting (nil when another scheduler has it or it is done).
    static func lockPending(_ tx: Transaction, runId: String) async throws -> (run: ScheduleRunView, schedule: StoredSchedule)? {
        guard
            let r = try await tx.one(
                "SELECT * FROM scans.schedule_runs WHERE id = $1 AND outcome = 'pending' FOR UPDATE SKIP LOCKED", [runId]),
            let s = try await tx.one("SELECT * FROM scans.schedules WHERE id = $1", [try r.string("schedule_id")])
        else { return nil }
        return (try run(r), try stored(s))
    }

    static func finishRun(_ tx: Transaction, id: String, outcome: RunOutcome, reason: String?, scanId: String?) async throws {
        try await tx.execute(
            """
            UPDATE scans.schedule_runs SET outcome = $2, reason = $3, scan_id = $4,
              started_at = CASE WHEN $2 = 'started' THEN now() END WHERE id = $1
            """, [id, outcome.rawValue, reason, scanId])
    }

    func finishRun(id: String, tenantId: String, outcome: RunOutcome, reason: String) async throws {
        try await db.transaction(.tenant(tenantId)) { try await Self.finishRun($0, id: id, outcome: outcome, reason: reason, scanId: nil) }
    }

    static func runView(_ tx: Transaction, id: String) async throws -> ScheduleRunView? {
        try await tx.one(
            "SELECT r.*, sc.status AS scan_status FROM scans.schedule_runs r LEFT JOIN scans.scans sc ON sc.id = r.scan_id WHERE r.id = $1",
            [id]
        ).map(run)
    }
}
