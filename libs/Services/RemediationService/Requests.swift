import AWS
import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct RemediationRequest: Codable, Sendable {
    var findingId: String?
    var action: String?
    var dryRun: Bool?
    var parameters: [String: JSONValue]?
}
struct ActionRef: Codable, Sendable { var actionId: String }
struct Decision: Codable, Sendable {
    var actionId: String
    var reason: String?
}
struct ActionListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var status: String?
    var findingId: String?
    var connectionId: String?
}

struct HistoryItem: Codable, Sendable {
    var at: Date
    var fromStatus: String?
    var toStatus: String
    var actor: String?
    var note: String?
}

/// A remediation action as the API shows it.
struct ActionView: Codable, Sendable {
    var id: String
    var findingId: String
    var connectionId: String
    var ruleCode: String
    var action: String
    var title: String
    var severity: String
    var resourceId: String
    var resourceType: String
    var resourceName: String
    var region: String
    var status: String
    var dryRun: Bool
    var parameters: [String: JSONValue]
    var plan: FixPlan
    var requestedBy: String
    var approvedBy: String?
    var approvedAt: Date?
    var decidedBy: String?
    var decisionReason: String?
    var beforeState: JSONValue?
    var afterState: JSONValue?
    var executedCalls: [APICall]?
    var verification: Verification?
    var rollbackVerification: Verification?
    var rollbackResourceId: String?
    var error: String?
    var attempts: Int
    var expiresAt: Date?
    var createdAt: Date
    var updatedAt: Date
    var appliedAt: Date?
    var rolledBackAt: Date?
    var history: [HistoryItem]?

    init(_ r: Row, history: [HistoryItem]? = nil) throws {
        id = try r.string("id")
        findingId = try r.string("finding_id")
        connectionId = try r.string("connection_id")
        ruleCode = try r.string("rule_code")
        action = try r.string("action")
        title = try r.string("title")
        severity = try r.string("severity")
        resourceId = try r.string("resource_id")
        resourceType = try r.string("resource_type")
        resourceName = try r.string("resource_name")
        region = try r.string("region")
        status = try r.string("status")
        dryRun = try r.bool("dry_run")
        parameters = try r.json("parameters")
        plan = try r.json("plan")
        requestedBy = try r.string("requested_by")
        approvedBy = r.optionalString("approved_by")
        approvedAt = r.optionalDate("approved_at")
        decidedBy = r.optionalString("decided_by")
        decisionReason = r.optionalString("decision_reason")
        beforeState = r.isNull("before_state") ? nil : try r.json("before_state")
        afterState = r.isNull("after_state") ? nil : try r.json("after_state")
        executedCalls = r.isNull("calls") ? nil : try r.json("calls")
        verification = r.isNull("verification") ? nil : try r.json("verification")
        rollbackVerification = r.isNull("rollback_verification") ? nil : try r.json("rollback_verification")
        rollbackResourceId = r.optionalString("rollback_resource_id")
        error = r.optionalString("error")
        attempts = try r.int("attempts")
        expiresAt = r.optionalDate("expires_at")
        createdAt = try r.date("created_at")
        updatedAt = try r.date("updated_at")
        appliedAt = r.optionalDate("applied_at")
        rolledBackAt = r.optionalDate("rolled_back_at")
        self.history = history
    }
}

struct ApprovalItem: Codable, Sendable {
    var id: String
    var kind: String
    var title: String
    var action: String
    var severity: String
    var resourceId: String
    var resourceName: String
    var connectionId: String
    var findingId: String
    var requestedBy: String
    var requestedAt: Date
    var expiresAt: Date?
    var canApprove: Bool
    var plan: FixPlan
}

struct ActionCatalog: Codable, Sendable { var items: [ActionInfo] }

/// Every `remediations` and `approvals` route: request (plan), list, pending, get, approve, reject,
/// rollback, approvals, and the action catalogue.
struct RequestHandlers: Sendable {
    let store: Store
    let bus: BusConnection
    let aws: AWSAccess

    func register(on r: ServiceResponder) {
        r.add(Endpoint<RemediationRequest, ActionView>(Subjects.Remediation.actionRequest), handler: request)
        r.add(Endpoint<ActionListRequest, Page<ActionView>>(Subjects.Remediation.actionList), handler: list)
        r.add(Endpoint<ActionListRequest, Page<ActionView>>(Subjects.Remediation.actionPending)) { q, p, ctx in
            var q = q
            q.status = "pending_approval"
            return try await list(q, p, ctx)
        }
        r.add(Endpoint<ActionRef, ActionView>(Subjects.Remediation.actionGet), handler: get)
        r.add(Endpoint<Decision, ActionView>(Subjects.Remediation.actionApprove), handler: approve)
        r.add(Endpoint<Decision, ActionView>(Subjects.Remediation.actionReject), handler: reject)
        r.add(Endpoint<ActionRef, ActionView>(Subjects.Remediation.actionRollback), handler: rollback)
        r.add(Endpoint<PageRequest, Page<ApprovalItem>>(Subjects.Remediation.approvalsList), handler: approvals)
        r.add(Endpoint<Empty, ActionCatalog>(Subjects.Remediation.actionsCatalog)) { _, p, ctx in
            return ActionCatalog(items: FixActions.all.map(ActionInfo.init))
        }
    }

    static let statuses = ActionStatus.allCases.map(\.rawValue)

    // MARK: request

    @Sendable func request(_ req: RemediationRequest, _ p: Principal, _ ctx: CallContext) async throws -> ActionView {
        guard let fid = req.findingId else { throw ServiceError.validation("body.finding_id", "field required") }
        guard ID.isValid(fid) else { throw ServiceError.validation("body.finding_id", "must be a finding id (UUID)") }
        let findingId = fid.lowercased()
        let policy = try await store.transaction(p.scope) { try await PolicyStore.load($0, tenantId: p.tenantId) }
        guard policy.mode != "disabled" else {
            throw ServiceError(
                status: 403, error: "remediation_disabled",
                message: "automatic remediation is disabled for this workspace (remediation policy mode: disabled)")
        }
        let finding = try await bus.request(
            Endpoint<FindingRef, FindingInfo>(Subjects.Findings.findingGet), FindingRef(findingId: findingId),
            context: ctx, timeout: .seconds(10))
        guard finding.status == "open" else {
            throw ServiceError.conflict("the finding is \(finding.status); only open findings are remediated", code: "finding_not_open")
        }
        let ruleAction = BuiltinRules.all.first { $0.id == finding.ruleCode }?.fixAction
        let name = req.action ?? ruleAction
        guard let name else {
            throw ServiceError(
                status: 422, error: "no_fix_action",
                message: "rule \(finding.ruleCode) has no automatic fix; follow the remediation steps of the finding")
        }
        guard let action = FixActions.byName[name] else { throw ServiceError.validation("body.action", "unknown action \(name)") }
        guard action.resourceType == finding.resourceType else {
            throw ServiceError.validation("body.action", "\(name) fixes \(action.resourceType) resources, not \(finding.resourceType)")
        }
        guard policy.allows(name) else {
            throw ServiceError(status: 403, error: "action_not_allowed", message: "the remediation policy does not allow \(name)")
        }
        let parameters = try Self.validate(req.parameters ?? [:], for: action)
        let dryRun = req.dryRun ?? policy.dryRunDefault

        let conn = try await CredentialHandlers.connection(bus, finding.connectionId, ctx)
        let apiRegion = finding.region == "global" ? (conn.settings.regions?.first ?? "us-east-1") : finding.region
        let session: AWSSession
        do {
            session = try await aws.session(
                tenantId: p.tenantId, connectionId: finding.connectionId, endpointURL: conn.settings.endpointUrl, region: apiRegion)
        } catch let e as SessionError {
            throw ServiceError(
                status: 409, error: "remediation_credentials_unusable", message: "the remediation credentials cannot be used: \(e.message)")
        }
        let id = ID.make()
        let target = FixTarget(
            resourceId: finding.resourceId, resourceName: finding.resourceName, resourceType: finding.resourceType, region: apiRegion,
            account: session.account, ruleId: finding.ruleCode, actionId: id, parameters: parameters)
        let plan: FixPlan
        do {
            let state = try await action.inspect(session.client, target)
            let calls = try action.plan(target, state)
            plan = FixPlan(
                action: ActionInfo(action), resourceId: target.resourceId, region: apiRegion, currentState: state, calls: calls,
                rollbackCalls: (try? action.rollback(target, state, [:])) ?? [])
        } catch let e as AWSError {
            throw ServiceError(
                status: 422, error: "plan_failed",
                message: "reading the resource failed (\(e.code)): \(e.message); the credentials need \(action.permissions.joined(separator: ", "))")
        }
        guard !plan.calls.isEmpty else {
            throw ServiceError.conflict("the resource no longer has this problem; the next scan resolves the finding", code: "nothing_to_change")
        }

        let autoApproved = !dryRun && policy.autoApproves(severity: finding.severity)
        let status: ActionStatus = dryRun ? .dryRun : autoApproved ? .approved : .pendingApproval
        // The plan's remediation quota: reserved now, committed when applied, released otherwise.
        if !dryRun { _ = try await Quotas.reserve(bus, tenantId: p.tenantId, quota: "remediations", ref: id) }
        do {
            return try await insert(
                p, ctx, id: id, finding: finding, name: name, action: action, apiRegion: apiRegion, conn: conn, session: session,
                status: status, dryRun: dryRun, autoApproved: autoApproved, parameters: parameters, plan: plan, policy: policy)
        } catch {
            if !dryRun { await Quotas.release(bus, tenantId: p.tenantId, quota: "remediations", ref: id) }
            throw error
        }
    }

    func insert(
        _ p: Principal, _ ctx: CallContext, id: String, finding: FindingInfo, name: String, action: FixAction, apiRegion: String,
        conn: ConnectionInfo, session: AWSSession, status: ActionStatus, dryRun: Bool, autoApproved: Bool, parameters: [String: JSONValue],
        plan: FixPlan, policy: RemediationPolicy
    ) async throws -> ActionView {
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            if !dryRun {
                let today = try await ActionStore.requestedToday(tx, tenantId: p.tenantId)
                if today >= policy.maxActionsPerDay {
                    throw ServiceError(
                        status: 429, error: "remediation_daily_limit",
                        message:
                            "the workspace has requested \(today) fixes in the last 24 hours (policy max_actions_per_day \(policy.maxActionsPerDay))")
                }
            }
            let inserted = try await ActionStore.insert(
                tx, tenantId: p.tenantId,
                .init(
                    id: id, finding: finding, action: name, title: action.title, apiRegion: apiRegion, endpointURL: conn.settings.endpointUrl,
                    accountId: session.account, status: status, dryRun: dryRun, parameters: parameters, plan: plan, requestedBy: p.actorId,
                    requestedRole: p.role.rawValue, approvedBy: autoApproved ? "policy:auto" : nil, approvalTtlHours: policy.approvalTtlHours))
            guard inserted else {
                throw ServiceError.conflict("a fix for this finding is already pending or running", code: "remediation_in_progress")
            }
            let note =
                dryRun
                ? "dry run: nothing is changed" : autoApproved ? "approved by the workspace policy (auto up to \(policy.autoMaxSeverity ?? ""))" : nil
            try await ActionStore.transition(
                tx, tenantId: p.tenantId, actionId: id, from: nil, to: dryRun ? "dry_run" : "pending_approval", actor: p.actorId,
                note: dryRun ? note : nil)
            if autoApproved {
                try await ActionStore.transition(
                    tx, tenantId: p.tenantId, actionId: id, from: "pending_approval", to: "approved", actor: "policy:auto", note: note)
                try await ActionStore.enqueue(tx, tenantId: p.tenantId, actionId: id, op: "execute")
            }
            return try await ActionStore.view(tx, id)
        }
    }

    static func validate(_ params: [String: JSONValue], for action: FixAction) throws -> [String: JSONValue] {
        var issues: [ValidationIssue] = []
        let known = Dictionary(uniqueKeysWithValues: action.parameters.map { ($0.name, $0) })
        for (k, v) in params {
            guard let spec = known[k] else {
                issues.append(
                    .init(
                        path: "body.parameters.\(k)",
                        message: known.isEmpty
                            ? "\(action.name) takes no parameters" : "unknown parameter; known: \(known.keys.sorted().joined(separator: ", "))"))
                continue
            }
            switch spec.type {
            case "string":
                guard let s = v.stringValue, !s.isEmpty, s.count <= 2048 else {
                    issues.append(.init(path: "body.parameters.\(k)", message: "must be a string"))
                    continue
                }
                if let allowed = spec.allowed, !allowed.contains(s) {
                    issues.append(.init(path: "body.parameters.\(k)", message: "must be one of \(allowed.joined(separator: ", "))"))
                }
            case "array<integer>":
                let items = v.arrayValue ?? []
                if items.isEmpty || items.count > 100
                    || items.contains(where: { n in n.numberValue.map { $0 < 0 || $0 > 65535 || $0 != $0.rounded() } ?? true })
                {
                    issues.append(.init(path: "body.parameters.\(k)", message: "must be a list of 1 to 100 port numbers"))
                }
            default: break
            }
        }
        for spec in action.parameters where spec.required && params[spec.name] == nil {
            issues.append(.init(path: "body.parameters.\(spec.name)", message: "field required"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        return params
    }

    // MARK: reads

    @Sendable func list(_ q: ActionListRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ActionView> {
        let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
        let filter = ActionStore.Filter(
            statuses: try Validate.list(q.status, path: "query.status", allowed: Self.statuses, lower: false),
            findingId: try q.findingId.map { try Validate.id($0, "finding").lowercased() },
            connectionId: try q.connectionId.map { try Validate.id($0, "connection").lowercased() })
        return try await store.transaction(p.scope) { tx in try await ActionStore.list(tx, page, tenantId: p.tenantId, filter) }
    }

    @Sendable func get(_ req: ActionRef, _ p: Principal, _ ctx: CallContext) async throws -> ActionView {
        let id = try Validate.id(req.actionId, "remediation action").lowercased()
        return try await store.transaction(p.scope) { tx in
            guard try await ActionStore.exists(tx, id: id, tenantId: p.tenantId) else {
                throw ServiceError.notFound("remediation action")
            }
            return try await ActionStore.view(tx, id, history: true)
        }
    }

    @Sendable func approvals(_ q: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ApprovalItem> {
        let page = try Pagination(q)
        return try await store.transaction(p.scope) { tx in
            let policy = try await PolicyStore.load(tx, tenantId: p.tenantId)
            return try await ActionStore.pendingApprovals(tx, page, tenantId: p.tenantId) { r in
                let requester = try r.string("requested_by")
                return ApprovalItem(
                    id: try r.string("id"), kind: "remediation", title: try r.string("title"), action: try r.string("action"),
                    severity: try r.string("severity"), resourceId: try r.string("resource_id"), resourceName: try r.string("resource_name"),
                    connectionId: try r.string("connection_id"), findingId: try r.string("finding_id"), requestedBy: requester,
                    requestedAt: try r.date("created_at"), expiresAt: r.optionalDate("expires_at"),
                    canApprove: policy.mayApprove(p) && (requester != p.actorId || policy.allowSelfApproval), plan: try r.json("plan"))
            }
        }
    }

    // MARK: decisions

    enum Outcome: Sendable {
        case done(ActionView)
        case expired
    }

    /// Locks a pending action for a decision by an approver; an action past its expiry is marked
    /// `expired` (committed) and refused.
    func decide(
        _ req: Decision, _ p: Principal, _ ctx: CallContext,
        _ body: @escaping @Sendable (Transaction, Principal, RemediationPolicy, Row) async throws -> Void
    ) async throws -> ActionView {
        let id = try Validate.id(req.actionId, "remediation action").lowercased()
        let outcome: Outcome = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let policy = try await PolicyStore.load(tx, tenantId: p.tenantId)
            guard let row = try await ActionStore.lockForDecision(tx, id: id, tenantId: p.tenantId)
            else { throw ServiceError.notFound("remediation action") }
            guard policy.mayApprove(p) else {
                throw ServiceError.forbidden(
                    "deciding on fixes needs one of the roles \(policy.requireApprovalFromRoles.joined(separator: ", ")) (remediation policy)")
            }
            let status = try row.string("status")
            guard status == "pending_approval" else {
                throw ServiceError.conflict("the action is \(status), not pending approval", code: "invalid_state")
            }
            if (try? row.bool("past")) == true {
                _ = try await ActionStore.expire(tx, id: id)
                try await ActionStore.transition(
                    tx, tenantId: p.tenantId, actionId: id, from: status, to: "expired", actor: nil, note: "not decided before it expired")
                return .expired
            }
            try await body(tx, p, policy, row)
            return .done(try await ActionStore.view(tx, id))
        }
        switch outcome {
        case .done(let v): return v
        case .expired: throw ServiceError.conflict("the request expired before it was decided; request the fix again", code: "expired")
        }
    }

    @Sendable func approve(_ req: Decision, _ p: Principal, _ ctx: CallContext) async throws -> ActionView {
        try await decide(req, p, ctx) { tx, p, policy, row in
            let id = try row.string("id")
            if try row.string("requested_by") == p.actorId && !policy.allowSelfApproval {
                throw ServiceError(
                    status: 403, error: "self_approval_forbidden",
                    message: "the requester cannot approve their own fix (remediation policy allow_self_approval is off)")
            }
            let reason = try req.reason.map { try Validate.text($0, path: "body.reason", max: 1000) }
            try await ActionStore.approve(tx, id: id, by: p.actorId, reason: reason)
            try await ActionStore.transition(
                tx, tenantId: p.tenantId, actionId: id, from: "pending_approval", to: "approved", actor: p.actorId, note: reason)
            try await ActionStore.enqueue(tx, tenantId: p.tenantId, actionId: id, op: "execute")
        }
    }

    @Sendable func reject(_ req: Decision, _ p: Principal, _ ctx: CallContext) async throws -> ActionView {
        let reason = try Validate.text(req.reason ?? "", path: "body.reason", max: 1000)
        return try await decide(req, p, ctx) { tx, p, _, row in
            let id = try row.string("id")
            try await ActionStore.reject(tx, id: id, by: p.actorId, reason: reason)
            try await ActionStore.transition(
                tx, tenantId: p.tenantId, actionId: id, from: "pending_approval", to: "rejected", actor: p.actorId, note: reason)
        }
    }

    @Sendable func rollback(_ req: ActionRef, _ p: Principal, _ ctx: CallContext) async throws -> ActionView {
        let id = try Validate.id(req.actionId, "remediation action").lowercased()
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let policy = try await PolicyStore.load(tx, tenantId: p.tenantId)
            guard let row = try await ActionStore.lock(tx, id: id, tenantId: p.tenantId) else {
                throw ServiceError.notFound("remediation action")
            }
            guard policy.mayApprove(p) else {
                throw ServiceError.forbidden(
                    "rolling back fixes needs one of the roles \(policy.requireApprovalFromRoles.joined(separator: ", ")) (remediation policy)")
            }
            let status = try row.string("status")
            guard ["applied", "failed", "rollback_failed"].contains(status) else {
                throw ServiceError.conflict("the action is \(status); only applied or failed fixes are rolled back", code: "invalid_state")
            }
            guard try row.int("steps_done") > 0, !row.isNull("before_state") else {
                throw ServiceError.conflict("nothing was changed by this action, so there is nothing to roll back", code: "nothing_to_roll_back")
            }
            try await ActionStore.startRollback(tx, id: id, by: p.actorId)
            try await ActionStore.transition(tx, tenantId: p.tenantId, actionId: id, from: status, to: "rolling_back", actor: p.actorId, note: nil)
            try await ActionStore.enqueue(tx, tenantId: p.tenantId, actionId: id, op: "rollback")
            return try await ActionStore.view(tx, id)
        }
    }
}
