import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

/// `PATCH /tenants/current/remediation-policy`: whether and how fixes in this workspace get approved.
struct RemediationPolicy: Codable, Sendable {
    /// `disabled` (no fixes), `manual` (every fix waits for approval), `auto` (fixes up to
    /// `auto_max_severity` are approved by the policy; the rest wait).
    var mode: String
    var autoMaxSeverity: String?
    /// Actions this workspace allows; nil = all.
    var allowedActions: [String]?
    var requireApprovalFromRoles: [String]
    var dryRunDefault: Bool
    var allowSelfApproval: Bool
    var approvalTtlHours: Int
    var maxActionsPerDay: Int
    var updatedBy: String?
    var updatedAt: Date?

    static let standard = RemediationPolicy(
        mode: "manual", autoMaxSeverity: nil, allowedActions: nil, requireApprovalFromRoles: ["owner", "admin"],
        dryRunDefault: false, allowSelfApproval: false, approvalTtlHours: 72, maxActionsPerDay: 50)

    func allows(_ action: String) -> Bool { allowedActions.map { $0.contains(action) } ?? true }

    /// Whether the policy itself approves a fix for a finding of this severity.
    func autoApproves(severity: String) -> Bool {
        guard mode == "auto", let cap = autoMaxSeverity.flatMap(Severity.init(rawValue:)), let s = Severity(rawValue: severity) else { return false }
        return s <= cap
    }

    func mayApprove(_ p: Principal) -> Bool { requireApprovalFromRoles.contains(p.role.rawValue) }
}

struct RemediationPolicyPatch: Codable, Sendable {
    var mode: String?
    var autoMaxSeverity: String?
    var allowedActions: [String]?
    var requireApprovalFromRoles: [String]?
    var dryRunDefault: Bool?
    var allowSelfApproval: Bool?
    var approvalTtlHours: Int?
    var maxActionsPerDay: Int?
}

struct PolicyHandlers: Sendable {
    let store: Store
    static let modes = ["disabled", "manual", "auto"]
    static let approverRoles = ["owner", "admin", "analyst"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, RemediationPolicy>(Subjects.Remediation.policyGet)) { _, ctx in
            let p = try ctx.requirePrincipal()
            try p.require(atLeast: .viewer)
            return try await store.transaction(p.scope) { try await Self.load($0, p.tenantId) }
        }
        r.add(Endpoint<RemediationPolicyPatch, RemediationPolicy>(Subjects.Remediation.policyUpdate), handler: update)
    }

    @Sendable func update(_ patch: RemediationPolicyPatch, _ ctx: CallContext) async throws -> RemediationPolicy {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        var issues: [ValidationIssue] = []
        if let m = patch.mode, !Self.modes.contains(m) {
            issues.append(.init(path: "body.mode", message: "must be one of \(Self.modes.joined(separator: ", "))"))
        }
        if let s = patch.autoMaxSeverity, Severity(rawValue: s) == nil {
            issues.append(
                .init(
                    path: "body.auto_max_severity", message: "must be one of \(Severity.allCases.reversed().map(\.rawValue).joined(separator: ", "))")
            )
        }
        if let a = patch.allowedActions {
            let unknown = a.filter { FixActions.byName[$0] == nil }
            if !unknown.isEmpty {
                issues.append(.init(path: "body.allowed_actions", message: "unknown actions: \(unknown.sorted().joined(separator: ", "))"))
            }
        }
        if let roles = patch.requireApprovalFromRoles {
            if roles.isEmpty || !Set(roles).isSubset(of: Self.approverRoles) {
                issues.append(
                    .init(path: "body.require_approval_from_roles", message: "must list one or more of \(Self.approverRoles.joined(separator: ", "))")
                )
            }
        }
        if let h = patch.approvalTtlHours, !(1...720).contains(h) {
            issues.append(.init(path: "body.approval_ttl_hours", message: "must be between 1 and 720"))
        }
        if let n = patch.maxActionsPerDay, !(0...10_000).contains(n) {
            issues.append(.init(path: "body.max_actions_per_day", message: "must be between 0 and 10000"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            var cur = try await Self.load(tx, p.tenantId)
            if let m = patch.mode { cur.mode = m }
            if let s = patch.autoMaxSeverity { cur.autoMaxSeverity = s }
            if let a = patch.allowedActions { cur.allowedActions = a.isEmpty ? nil : Array(Set(a)).sorted() }
            if let r = patch.requireApprovalFromRoles { cur.requireApprovalFromRoles = Array(Set(r)).sorted() }
            if let d = patch.dryRunDefault { cur.dryRunDefault = d }
            if let s = patch.allowSelfApproval { cur.allowSelfApproval = s }
            if let h = patch.approvalTtlHours { cur.approvalTtlHours = h }
            if let n = patch.maxActionsPerDay { cur.maxActionsPerDay = n }
            if cur.mode == "auto" && cur.autoMaxSeverity == nil { cur.autoMaxSeverity = "medium" }
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
                    p.tenantId, cur.mode, cur.autoMaxSeverity, cur.allowedActions.map { ArrayParameter($0) },
                    ArrayParameter(cur.requireApprovalFromRoles),
                    cur.dryRunDefault, cur.allowSelfApproval, cur.approvalTtlHours, cur.maxActionsPerDay, p.actorId,
                ])
            try await tx.emit(
                Events.remediationPolicyUpdated, tenantId: p.tenantId,
                data: ["mode": cur.mode, "auto_max_severity": cur.autoMaxSeverity ?? "", "actor": p.actorId])
            return try await Self.load(tx, p.tenantId)
        }
    }

    static func load(_ tx: Transaction, _ tenantId: String) async throws -> RemediationPolicy {
        guard let r = try await tx.one("SELECT * FROM remediation.policies WHERE tenant_id = $1", [tenantId]) else { return .standard }
        return RemediationPolicy(
            mode: try r.string("mode"), autoMaxSeverity: r.optionalString("auto_max_severity"),
            allowedActions: r.isNull("allowed_actions") ? nil : try r.stringArray("allowed_actions"),
            requireApprovalFromRoles: try r.stringArray("require_approval_from_roles"),
            dryRunDefault: try r.bool("dry_run_default"), allowSelfApproval: try r.bool("allow_self_approval"),
            approvalTtlHours: try r.int("approval_ttl_hours"), maxActionsPerDay: try r.int("max_actions_per_day"),
            updatedBy: r.optionalString("updated_by"), updatedAt: r.optionalDate("updated_at"))
    }
}
