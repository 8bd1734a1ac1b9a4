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
        r.add(Endpoint<Empty, RemediationPolicy>(Subjects.Remediation.policyGet)) { _, p, ctx in
            try p.require(atLeast: .viewer)
            return try await store.transaction(p.scope) { try await PolicyStore.load($0, tenantId: p.tenantId) }
        }
        r.add(Endpoint<RemediationPolicyPatch, RemediationPolicy>(Subjects.Remediation.policyUpdate), handler: update)
    }

    @Sendable func update(_ patch: RemediationPolicyPatch, _ p: Principal, _ ctx: CallContext) async throws -> RemediationPolicy {
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
            var cur = try await PolicyStore.load(tx, tenantId: p.tenantId)
            if let m = patch.mode { cur.mode = m }
            if let s = patch.autoMaxSeverity { cur.autoMaxSeverity = s }
            if let a = patch.allowedActions { cur.allowedActions = a.isEmpty ? nil : Array(Set(a)).sorted() }
            if let r = patch.requireApprovalFromRoles { cur.requireApprovalFromRoles = Array(Set(r)).sorted() }
            if let d = patch.dryRunDefault { cur.dryRunDefault = d }
            if let s = patch.allowSelfApproval { cur.allowSelfApproval = s }
            if let h = patch.approvalTtlHours { cur.approvalTtlHours = h }
            if let n = patch.maxActionsPerDay { cur.maxActionsPerDay = n }
            if cur.mode == "auto" && cur.autoMaxSeverity == nil { cur.autoMaxSeverity = "medium" }
            try await PolicyStore.save(tx, tenantId: p.tenantId, cur, by: p.actorId)
            try await tx.emit(
                Events.remediationPolicyUpdated, tenantId: p.tenantId,
                data: ["mode": cur.mode, "auto_max_severity": cur.autoMaxSeverity ?? "", "actor": p.actorId])
            return try await PolicyStore.load(tx, tenantId: p.tenantId)
        }
    }
}
