import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// What a remediation action goes through; `remediation.actions.status` holds the raw value.
enum ActionStatus: String, CaseIterable, Sendable {
    case pendingApproval = "pending_approval"
    case approved, executing, applied, failed
    case rollingBack = "rolling_back"
    case rolledBack = "rolled_back"
    case rollbackFailed = "rollback_failed"
    case rejected, expired
    case dryRun = "dry_run"
}

/// Every statement on `remediation.actions` and `remediation.action_history`: the API's requests,
/// reads and decisions, the executor's claims and recorded progress, and the expiry sweep. Every status
/// change goes through `transition`, which writes the history row and emits the lifecycle event in the
/// same transaction.
struct ActionStore: Sendable {
    let db: Store

    // MARK: lifecycle

    static let eventNames = ["pending_approval": "requested", "dry_run": "planned"]

    /// Records a status change in the history and emits `vigil.events.remediation.<name>`.
    static func transition(
        _ tx: Transaction, tenantId: String, actionId: String, from: String?, to: String, actor: String?, note: String?,
        extra: [String: String] = [:]
    ) async throws {
        try await tx.execute(
            """
            INSERT INTO remediation.action_history (tenant_id, action_id, from_status, to_status, actor, note) VALUES ($1, $2, $3, $4, $5, $6)
            """, [tenantId, actionId, from, to, actor, note])
        guard
            let row = try await tx.one(
                "SELECT finding_id, connection_id, rule_code, action, resource_id, severity FROM remediation.actions WHERE id = $1",
                [actionId])
        else { return }
        let name = eventNames[to] ?? to
        var data: [String: String] = [
            "action_id": actionId, "finding_id": try row.string("finding_id"), "connection_id": try row.string("connection_id"),
            "rule_code": try row.string("rule_code"), "action": try row.string("action"),
            "resource_id": try row.string("resource_id"), "severity": try row.string("severity"), "status": to,
        ]
        if let from { data["previous_status"] = from }
        if let actor { data["actor"] = actor }
        if let note { data["reason"] = note }
        data.merge(extra) { $1 }
        try await tx.emit(Events.kind("remediation", name), tenantId: tenantId, data: data)
    }

    /// Queues the executor's job in the same transaction (outbox).
    static func enqueue(_ tx: Transaction, tenantId: String, actionId: String, op: String) async throws {
        try await tx.emit(
            Jobs.remediation(op), type: "remediation.job", tenantId: tenantId,
            data: RemediationJob(actionId: actionId, tenantId: tenantId, op: op))
    }

    // MARK: reads

    static func view(_ tx: Transaction, _ id: String, history: Bool = false) async throws -> ActionView {
        guard let row = try await tx.one("SELECT * FROM remediation.actions WHERE id = $1", [id]) else {
            throw ServiceError.notFound("remediation action")
        }
        var items: [HistoryItem]? = nil
        if history {
            items = try await tx.query("SELECT * FROM remediation.action_history WHERE action_id = $1 ORDER BY id", [id]).map {
                HistoryItem(
                    at: try $0.date("at"), fromStatus: $0.optionalString("from_status"), toStatus: try $0.string("to_status"),
                    actor: $0.optionalString("actor"), note: $0.optionalString("note"))
            }
        }
        return try ActionView(row, history: items)
    }

    static func exists(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.one("SELECT id FROM remediation.actions WHERE id = $1 AND tenant_id = $2", [id, tenantId]) != nil
    }

    struct Filter: Sendable {
        var statuses: [String]?
        var findingId: String?
        var connectionId: String?
    }

    static func list(_ tx: Transaction, _ page: Pagination, tenantId: String, _ f: Filter) async throws -> Page<ActionView> {
        var filter = "tenant_id = $1"
        var values: [any SQLParameter] = [tenantId]
        if let list = f.statuses {
            values.append(ArrayParameter(list))
            filter += " AND status = ANY($\(values.count)::text[])"
        }
        if let id = f.findingId {
            values.append(id)
            filter += " AND finding_id = $\(values.count)::uuid"
        }
        if let id = f.connectionId {
            values.append(id)
            filter += " AND connection_id = $\(values.count)::uuid"
        }
        return try await page.list(tx, from: "remediation.actions", filter: filter, values) { try ActionView($0) }
    }

    /// Pending approvals not yet past their expiry, mapped by the caller (who knows the policy).
    static func pendingApprovals<T: Sendable>(
        _ tx: Transaction, _ page: Pagination, tenantId: String, map: @escaping @Sendable (Row) throws -> T
    ) async throws -> Page<T> {
        try await page.list(
            tx, from: "remediation.actions", filter: "tenant_id = $1 AND status = 'pending_approval' AND expires_at > now()", [tenantId],
            map: map)
    }

    // MARK: requests and decisions

    /// Fixes (not dry runs) the workspace requested in the last 24 hours.
    static func requestedToday(_ tx: Transaction, tenantId: String) async throws -> Int {
        try await tx.single(
            """
            SELECT count(*) AS n FROM remediation.actions WHERE tenant_id = $1 AND NOT dry_run AND created_at > now() - interval '1 day'
            """, [tenantId]
        ).int("n")
    }

    /// A new action as planned for a finding.
    struct NewAction: Sendable {
        var id: String
        var finding: FindingInfo
        var action: String
        var title: String
        var apiRegion: String
        var endpointURL: String?
        var accountId: String
        var status: ActionStatus
        var dryRun: Bool
        var parameters: [String: JSONValue]
        var plan: FixPlan
        var requestedBy: String
        var requestedRole: String
        var approvedBy: String?
        var approvalTtlHours: Int
    }

    /// Inserts the action; false when another fix for the finding is already in flight.
    static func insert(_ tx: Transaction, tenantId: String, _ a: NewAction) async throws -> Bool {
        let f = a.finding
        return try await tx.one(
            """
            INSERT INTO remediation.actions (id, tenant_id, finding_id, connection_id, rule_code, action, title, severity, resource_id,
              resource_type, resource_name, region, api_region, endpoint_url, account_id, status, dry_run, parameters, plan, requested_by,
              requested_role, approved_by, approved_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::jsonb, $19::jsonb, $20, $21,
              $22, CASE WHEN $22::text IS NULL THEN NULL ELSE now() END,
              CASE WHEN $16 = 'pending_approval' THEN now() + make_interval(hours => $23) END)
            ON CONFLICT DO NOTHING RETURNING id
            """,
            [
                a.id, tenantId, f.id, f.connectionId, f.ruleCode, a.action, a.title, f.severity, f.resourceId, f.resourceType, f.resourceName,
                f.region, a.apiRegion, a.endpointURL, a.accountId, a.status.rawValue, a.dryRun, try JSONParameter(a.parameters),
                try JSONParameter(a.plan), a.requestedBy, a.requestedRole, a.approvedBy, a.approvalTtlHours,
            ]) != nil
    }

    /// Locks the tenant's action for a decision; `past` says whether its approval window has closed.
    static func lockForDecision(_ tx: Transaction, id: String, tenantId: String) async throws -> Row? {
        try await tx.one(
            """
            SELECT *, expires_at < now() AS past FROM remediation.actions WHERE id = $1 AND tenant_id = $2 FOR UPDATE
            """, [id, tenantId])
    }

    static func lock(_ tx: Transaction, id: String, tenantId: String) async throws -> Row? {
        try await tx.one("SELECT * FROM remediation.actions WHERE id = $1 AND tenant_id = $2 FOR UPDATE", [id, tenantId])
    }

    static func approve(_ tx: Transaction, id: String, by actor: String, reason: String?) async throws {
        try await tx.execute(
            """
            UPDATE remediation.actions SET status = 'approved', approved_by = $2, approved_at = now(), decided_by = $2, decision_reason = $3,
              updated_at = now() WHERE id = $1
            """, [id, actor, reason])
    }

    static func reject(_ tx: Transaction, id: String, by actor: String, reason: String) async throws {
        try await tx.execute(
            """
            UPDATE remediation.actions SET status = 'rejected', decided_by = $2, decision_reason = $3, updated_at = now() WHERE id = $1
            """, [id, actor, reason])
    }

    /// Starts a rollback; a retried failed rollback keeps its recorded calls and resumes.
    static func startRollback(_ tx: Transaction, id: String, by actor: String) async throws {
        try await tx.execute(
            """
            UPDATE remediation.actions SET status = 'rolling_back', rollback_requested_by = $2, attempts = 0, error = NULL,
              rollback_calls = CASE WHEN status = 'rollback_failed' THEN rollback_calls ELSE NULL END, updated_at = now() WHERE id = $1
            """, [id, actor])
    }

    /// Marks a pending action `expired`; false when it was no longer pending.
    static func expire(_ tx: Transaction, id: String) async throws -> Bool {
        try await tx.execute(
            """
            UPDATE remediation.actions SET status = 'expired', updated_at = now() WHERE id = $1 AND status = 'pending_approval'
            """, [id]) == 1
    }

    /// Pending approvals past their expiry in every workspace (id, tenant), at most 500.
    func dueForExpiry() async throws -> [(id: String, tenantId: String)] {
        try await db.query(
            .crossTenant,
            """
            SELECT id, tenant_id FROM remediation.actions WHERE status = 'pending_approval' AND expires_at < now() LIMIT 500
            """
        ).map { (try $0.string("id"), try $0.string("tenant_id")) }
    }

    // MARK: executor

    /// The action's status, locked for the rest of the transaction.
    static func lockedStatus(_ tx: Transaction, id: String) async throws -> String? {
        try await tx.one("SELECT status FROM remediation.actions WHERE id = $1 FOR UPDATE", [id])?.string("status")
    }

    static func lockedAttempt(_ tx: Transaction, id: String) async throws -> (status: String, attempts: Int)? {
        guard let row = try await tx.one("SELECT status, attempts FROM remediation.actions WHERE id = $1 FOR UPDATE", [id]) else { return nil }
        return (try row.string("status"), try row.int("attempts"))
    }

    static func row(_ tx: Transaction, id: String) async throws -> Row? {
        try await tx.one("SELECT * FROM remediation.actions WHERE id = $1", [id])
    }

    /// Counts an attempt, moving the action to `status` when given.
    static func countAttempt(_ tx: Transaction, id: String, attempt: Int, status: ActionStatus? = nil) async throws {
        try await tx.execute(
            "UPDATE remediation.actions SET status = coalesce($3, status), attempts = $2, updated_at = now() WHERE id = $1",
            [id, attempt, status?.rawValue])
    }

    static func end(_ tx: Transaction, id: String, status: ActionStatus, error: String) async throws {
        try await tx.execute(
            "UPDATE remediation.actions SET status = $2, error = $3, updated_at = now() WHERE id = $1", [id, status.rawValue, error])
    }

    func attempts(_ job: RemediationJob) async throws -> Int? {
        try await db.query(.tenant(job.tenantId), "SELECT attempts FROM remediation.actions WHERE id = $1", [job.actionId]).first?.int("attempts")
    }

    func recordError(_ job: RemediationJob, _ message: String) async throws {
        _ = try await db.query(.tenant(job.tenantId), "UPDATE remediation.actions SET error = $2 WHERE id = $1", [job.actionId, message])
    }

    /// The state about to change and the exact calls, recorded before the first change.
    func recordPlan(_ job: RemediationJob, before: JSONValue, calls: [APICall]) async throws {
        try await update(
            job, "UPDATE remediation.actions SET before_state = $2::jsonb, calls = $3::jsonb, updated_at = now() WHERE id = $1",
            [try JSONParameter(before), try JSONParameter(calls)])
    }

    func recordRollbackPlan(_ job: RemediationJob, calls: [APICall]) async throws {
        try await update(
            job, "UPDATE remediation.actions SET rollback_calls = $2::jsonb, rollback_steps_done = 0, rollback_outputs = '{}' WHERE id = $1",
            [try JSONParameter(calls)])
    }

    /// Progress after a call: steps done and the values captured so far, for the apply or the rollback.
    func recordProgress(_ job: RemediationJob, rollback: Bool, stepsDone: Int, outputs: [String: String]) async throws {
        let sql =
            rollback
            ? "UPDATE remediation.actions SET rollback_steps_done = $2, rollback_outputs = $3::jsonb, updated_at = now() WHERE id = $1"
            : "UPDATE remediation.actions SET steps_done = $2, outputs = $3::jsonb, updated_at = now() WHERE id = $1"
        try await update(job, sql, [stepsDone, try JSONParameter(outputs)])
    }

    private func update(_ job: RemediationJob, _ sql: String, _ values: [any SQLParameter]) async throws {
        _ = try await db.query(.tenant(job.tenantId), sql, [job.actionId] + values)
    }

    static func finishApply(
        _ tx: Transaction, id: String, status: ActionStatus, verification: Verification, after: JSONValue, error: String?
    ) async throws {
        try await tx.execute(
            """
            UPDATE remediation.actions SET status = $2, verification = $3::jsonb, after_state = $4::jsonb, error = $5,
              applied_at = CASE WHEN $2 = 'applied' THEN now() END, updated_at = now() WHERE id = $1
            """, [id, status.rawValue, try JSONParameter(verification), try JSONParameter(after), error])
    }

    static func finishRollback(
        _ tx: Transaction, id: String, status: ActionStatus, verification: Verification, resourceId: String, error: String?
    ) async throws {
        try await tx.execute(
            """
            UPDATE remediation.actions SET status = $2, rollback_verification = $3::jsonb, rollback_resource_id = $4, error = $5,
              rolled_back_at = CASE WHEN $2 = 'rolled_back' THEN now() END, updated_at = now() WHERE id = $1
            """, [id, status.rawValue, try JSONParameter(verification), resourceId, error])
    }
}
