import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// The domain services. Each owns its schema and subjects; their domains grow in later issues, and
/// today each starts on the shared runtime, migrates its schema, relays its outbox and answers `$SRV`.
public enum DomainServices {
    public static let billing = ServiceDefinition(
        name: "billing", description: "Plans, subscriptions, usage and quotas", schema: "billing")

    public static let remediation = ServiceDefinition(
        name: "remediation", description: "Remediation policies, approvals, actions and rollback", schema: "remediation",
        migrations: [
            Migration(1, "remediation policies", """
            CREATE TABLE {schema}.policies (
              tenant_id uuid PRIMARY KEY, mode text NOT NULL DEFAULT 'manual',
              auto_approve_severities text[] NOT NULL DEFAULT '{}', require_verification boolean NOT NULL DEFAULT true,
              allowed_actions text[], max_actions_per_day integer NOT NULL DEFAULT 50,
              updated_by text, updated_at timestamptz NOT NULL DEFAULT now());
            """ + Migration.tenantIsolation(table: "policies")),
        ]
    ) { ctx in
        RemediationPolicyHandlers(store: ctx.store!).register(on: ctx.responder)
        return []
    }
}

/// `PATCH /tenants/current/remediation-policy`: how fixes in this workspace get approved.
struct RemediationPolicy: Codable, Sendable {
    var mode: String
    var autoApproveSeverities: [String]
    var requireVerification: Bool
    var allowedActions: [String]?
    var maxActionsPerDay: Int
    var updatedAt: Date?
}

struct RemediationPolicyPatch: Codable, Sendable {
    var mode: String?
    var autoApproveSeverities: [String]?
    var requireVerification: Bool?
    var allowedActions: [String]?
    var maxActionsPerDay: Int?
}

struct RemediationPolicyHandlers: Sendable {
    let store: Store
    static let modes = ["manual", "auto_approve", "disabled"]
    static let severities = ["critical", "high", "medium", "low", "info"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, RemediationPolicy>("vigil.remediation.policy.get")) { _, ctx in
            let p = try ctx.requirePrincipal()
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { try await load($0, p.tenantId) }
        }
        r.add(Endpoint<RemediationPolicyPatch, RemediationPolicy>("vigil.remediation.policy.update")) { patch, ctx in
            let p = try ctx.requirePrincipal()
            try p.require(atLeast: .admin)
            var issues: [ValidationIssue] = []
            if let m = patch.mode, !Self.modes.contains(m) { issues.append(.init(path: "body.mode", message: "must be one of \(Self.modes.joined(separator: ", "))")) }
            if let s = patch.autoApproveSeverities, !Set(s).isSubset(of: Self.severities) {
                issues.append(.init(path: "body.auto_approve_severities", message: "must contain only \(Self.severities.joined(separator: ", "))"))
            }
            if let n = patch.maxActionsPerDay, !(0...10_000).contains(n) { issues.append(.init(path: "body.max_actions_per_day", message: "must be between 0 and 10000")) }
            guard issues.isEmpty else { throw ServiceError.validation(issues) }
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                var cur = try await load(tx, p.tenantId)
                if let m = patch.mode { cur.mode = m }
                if let s = patch.autoApproveSeverities { cur.autoApproveSeverities = s }
                if let v = patch.requireVerification { cur.requireVerification = v }
                if let a = patch.allowedActions { cur.allowedActions = a }
                if let n = patch.maxActionsPerDay { cur.maxActionsPerDay = n }
                try await tx.execute("""
                    INSERT INTO remediation.policies (tenant_id, mode, auto_approve_severities, require_verification, allowed_actions, max_actions_per_day, updated_by)
                    VALUES ($1, $2, $3::text[], $4, $5::text[], $6, $7)
                    ON CONFLICT (tenant_id) DO UPDATE SET mode = $2, auto_approve_severities = $3::text[], require_verification = $4,
                      allowed_actions = $5::text[], max_actions_per_day = $6, updated_by = $7, updated_at = now()
                    """, [p.tenantId, cur.mode, cur.autoApproveSeverities, cur.requireVerification, cur.allowedActions,
                          cur.maxActionsPerDay, p.actorId])
                try await tx.emit("vigil.events.remediation.policy_updated", type: "remediation.policy_updated", tenantId: p.tenantId,
                                  data: ["mode": cur.mode, "actor": p.actorId])
                return try await load(tx, p.tenantId)
            }
        }
    }

    func load(_ tx: Transaction, _ tenantId: String) async throws -> RemediationPolicy {
        guard let r = try await tx.one("SELECT * FROM remediation.policies WHERE tenant_id = $1", [tenantId]) else {
            return RemediationPolicy(mode: "manual", autoApproveSeverities: [], requireVerification: true, allowedActions: nil,
                                     maxActionsPerDay: 50, updatedAt: nil)
        }
        return RemediationPolicy(mode: try r.string("mode"), autoApproveSeverities: try r.stringArray("auto_approve_severities"),
                                 requireVerification: try r.bool("require_verification"),
                                 allowedActions: r.isNull("allowed_actions") ? nil : try r.stringArray("allowed_actions"),
                                 maxActionsPerDay: try r.int("max_actions_per_day"), updatedAt: r.optionalDate("updated_at"))
    }
}
