import Contracts
import Store
import VigilCore

/// Every statement on `remediation.policies`: one row per workspace that changed the defaults.
enum PolicyStore {
    /// The workspace's policy, or the standard one when it never changed it.
    static func load(_ tx: Transaction, tenantId: String) async throws -> RemediationPolicy {
        guard let r = try await tx.one("SELECT * FROM remediation.policies WHERE tenant_id = $1", [tenantId]) else { return .standard }
        return RemediationPolicy(
            mode: try r.string("mode"), autoMaxSeverity: r.optionalString("auto_max_severity"),
            allowedActions: r.isNull("allowed_actions") ? nil : try r.stringArray("allowed_actions"),
            requireApprovalFromRoles: try r.stringArray("require_approval_from_roles"),
            dryRunDefault: try r.bool("dry_run_default"), allowSelfApproval: try r.bool("allow_self_approval"),
            approvalTtlHours: try r.int("approval_ttl_hours"), maxActionsPerDay: try r.int("max_actions_per_day"),
            updatedBy: r.optionalString("updated_by"), updatedAt: r.optionalDate("updated_at"))
    }

    static func save(_ tx: Transaction, tenantId: String, _ p: RemediationPolicy, by actor: String) async throws {
        try await tx.execute(
            """
            INSERT INTO remediation.policies (tenant_id, mode, auto_max_severity, allowed_actions, require_approval_from_roles, dry_run_default,
              allow_self_approval, approval_ttl_hours, max_actions_per_day, updated_by)
            VALUES ($1, $2, $3, $4::text[], $5::text[], $6, $7, $8, $9, $10)
            ON CONFLICT (tenant_id) DO UPDATE SET mode = $2, auto_max_severity = $3, allowed_actions = $4::text[],
              require_approval_from_roles = $5::text[], dry_run_default = $6, allow_self_approval = $7, approval_ttl_hours = $8,
              max_actions_per_day = $9, updated_by = $10, updated_at = now()
            """,
            [
                tenantId, p.mode, p.autoMaxSeverity, p.allowedActions.map { ArrayParameter($0) }, ArrayParameter(p.requireApprovalFromRoles),
                p.dryRunDefault, p.allowSelfApproval, p.approvalTtlHours, p.maxActionsPerDay, actor,
            ])
    }
}
