import AWS
import Bus
import Contracts
import Foundation
import Logging
import ScanEngine
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

/// The result of re-collecting a resource and re-evaluating the finding's rule on it.
struct Verification: Codable, Sendable {
    /// PASS (the rule passes), FAIL (it still fails), GONE (the resource no longer exists).
    var status: String
    var ruleCode: String
    var resourceId: String
    var checkedAt: Date
    var evidence: [String: JSONValue]?
}

enum Verifier {
    /// Collects the action's service in the region with the given client, finds the resource and
    /// evaluates the rule on it, exactly as a scan would.
    static func check(
        _ client: AWSClient, account: String, region: String, service: String, resourceId: String, ruleId: String
    ) async throws -> Verification {
        guard let collector = AWSCollectors.named(service), let rule = BuiltinRules.all.first(where: { $0.id == ruleId }) else {
            throw ServiceError(status: 500, error: "internal_error", message: "no collector for \(service) or no rule \(ruleId)")
        }
        let resources = try await collector.collect(CollectContext(client: client, account: account, region: region, width: 4))
        guard let resource = resources.first(where: { $0.id == resourceId }) else {
            return Verification(status: "GONE", ruleCode: ruleId, resourceId: resourceId, checkedAt: Date(), evidence: nil)
        }
        let result = Scanner.evaluate([resource], rules: RuleEngine.index([rule]), tenantId: "", connectionId: "").first
        return Verification(status: result?.status ?? "PASS", ruleCode: ruleId, resourceId: resourceId, checkedAt: Date(), evidence: result?.evidence)
    }
}

/// Runs approved fixes and rollbacks from VIGIL_JOBS (`vigil.jobs.remediation.execute|rollback`).
///
/// Durable and idempotent: the before-state and the exact calls are recorded before the first change,
/// and progress after every call, so a redelivered job (the executor died) resumes at the next call
/// instead of starting over; a job for an action no longer in the right state is acknowledged and
/// ignored. After `max attempts` the action ends `failed` with its record intact (and can be rolled back).
struct Executor: Sendable {
    let store: Store
    let aws: AWSAccess
    let settings: RemediationSettings
    let logger: Logger
    var actions: ActionStore { ActionStore(db: store) }

    func consumerConfig() -> JetStream.ConsumerConfig {
        var c = JetStream.ConsumerConfig(durable: "remediation-executor", filterSubject: Jobs.remediationAll)
        c.ackWait = settings.ackWait
        c.maxDeliver = 100
        c.maxAckPending = 200
        return c
    }

    /// A failure that retrying will not fix (refused permission, missing credentials, a bad plan).
    struct Permanent: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        guard let env = try? JSON.decode(JobEnvelope<RemediationJob>.self, from: m.data) else {
            logger.error("undecodable remediation job dropped", metadata: ["subject": "\(m.subject)"])
            return .drop
        }
        let job = env.data
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: settings.ackWait / 3)
                if Task.isCancelled { break }
                try? m.inProgress()
            }
        }
        defer { heartbeat.cancel() }
        do {
            try await run(job)
            return .ack
        } catch let e as Permanent {
            await fail(job, e.message)
            return .ack
        } catch {
            let message = AWSFailure.describe(error)
            logger.warning("remediation attempt failed", metadata: ["action_id": "\(job.actionId)", "op": "\(job.op)", "error": "\(message)"])
            let attempts = (try? await actions.attempts(job)) ?? 0
            if attempts >= settings.maxAttempts {
                await fail(job, "gave up after \(attempts) attempts: \(message)")
                return .ack
            }
            try? await actions.recordError(job, message)
            return .retry(after: StreamConsumer.backoff(attempt: attempts, cap: .seconds(30)))
        }
    }

    /// Ends the action `failed` (apply) or `rollback_failed` (rollback), keeping what was recorded.
    func fail(_ job: RemediationJob, _ message: String) async {
        let from = job.op == "rollback" ? ActionStatus.rollingBack : .executing
        let to = job.op == "rollback" ? ActionStatus.rollbackFailed : .failed
        do {
            try await store.transaction(.tenant(job.tenantId)) { tx in
                guard let status = try await ActionStore.lockedStatus(tx, id: job.actionId),
                    [from.rawValue, ActionStatus.approved.rawValue].contains(status)
                else { return }
                try await ActionStore.end(tx, id: job.actionId, status: to, error: message)
                try await ActionStore.transition(
                    tx, tenantId: job.tenantId, actionId: job.actionId, from: status, to: to.rawValue, actor: "executor", note: message)
            }
        } catch {
            logger.error("could not record a failed remediation", metadata: ["action_id": "\(job.actionId)", "error": "\(error)"])
        }
    }

    /// Claims the action for this attempt; nil when the job is stale (already done, rejected, …).
    func claim(_ job: RemediationJob) async throws -> Row? {
        try await store.transaction(.tenant(job.tenantId)) { tx in
            guard let (status, attempts) = try await ActionStore.lockedAttempt(tx, id: job.actionId) else { return nil }
            let attempt = attempts + 1
            switch (job.op, status) {
            case ("execute", "approved"):
                try await ActionStore.countAttempt(tx, id: job.actionId, attempt: attempt, status: .executing)
                try await ActionStore.transition(
                    tx, tenantId: job.tenantId, actionId: job.actionId, from: status, to: "executing", actor: "executor", note: nil)
            case ("execute", "executing"), ("rollback", "rolling_back"):
                if attempt > settings.maxAttempts {
                    throw Permanent(message: "the executor stopped \(attempt - 1) times while working on this action")
                }
                try await ActionStore.countAttempt(tx, id: job.actionId, attempt: attempt)
            default:
                return nil
            }
            return try await ActionStore.row(tx, id: job.actionId)
        }
    }

    func run(_ job: RemediationJob) async throws {
        guard let row = try await claim(job) else { return }
        let name = try row.string("action")
        guard let action = FixActions.byName[name] else { throw Permanent(message: "unknown action \(name)") }
        let connectionId = try row.string("connection_id")
        let region = try row.string("api_region")
        let session: AWSSession
        do {
            session = try await aws.session(
                tenantId: job.tenantId, connectionId: connectionId, endpointURL: row.optionalString("endpoint_url"), region: region)
        } catch let e as ServiceError {
            throw Permanent(message: e.message)
        } catch let e as SessionError where e.permanent {
            throw Permanent(message: e.message)
        }
        let target = FixTarget(
            resourceId: try row.string("resource_id"), resourceName: try row.string("resource_name"),
            resourceType: try row.string("resource_type"), region: region, account: session.account,
            ruleId: try row.string("rule_code"), actionId: job.actionId, parameters: try row.json("parameters"))
        if job.op == "rollback" { try await rollback(job, row, action, target, session) } else { try await apply(job, row, action, target, session) }
    }

    /// Runs calls from `from`, recording progress and captured values after each.
    func perform(
        _ job: RemediationJob, _ calls: [APICall], from: Int, outputs: [String: String], client: AWSClient, rollback: Bool
    ) async throws -> [String: String] {
        var outputs = outputs
        for i in from..<calls.count {
            let call = calls[i]
            do {
                let captured = try await call.perform(client)
                outputs.merge(captured) { $1 }
            } catch let e as AWSError where !e.isThrottling && (400..<500).contains(e.status) {
                throw Permanent(message: "\(call.operation) was refused (\(e.code)): \(e.message)")
            }
            try await actions.recordProgress(job, rollback: rollback, stepsDone: i + 1, outputs: outputs)
            if settings.stepDelay > .zero { try await Task.sleep(for: settings.stepDelay) }
        }
        return outputs
    }

    func verify(_ action: FixAction, _ target: FixTarget, resourceId: String, _ session: AWSSession) async throws -> Verification {
        let (client, account, region, service, rule) = (session.client, session.account, target.region, action.service, target.ruleId)
        return try await Verifier.check(client, account: account, region: region, service: service, resourceId: resourceId, ruleId: rule)
    }

    func apply(_ job: RemediationJob, _ row: Row, _ action: FixAction, _ target: FixTarget, _ session: AWSSession) async throws {
        let client = session.client
        // 1. Record the state about to change and the exact calls, before the first change.
        var calls: [APICall]
        if row.isNull("before_state") || row.isNull("calls") {
            let before = try await action.inspect(client, target)
            do { calls = try action.plan(target, before) } catch let e as ServiceError { throw Permanent(message: e.message) }
            try await actions.recordPlan(job, before: before, calls: calls)
            if settings.stepDelay > .zero { try await Task.sleep(for: settings.stepDelay) }
        } else {
            calls = try row.json("calls")
        }
        // 2. Apply, resuming after the last recorded call.
        let outputs = try await perform(
            job, calls, from: try row.int("steps_done"), outputs: try row.json("outputs"), client: client, rollback: false)
        _ = outputs
        // 3. Verify by re-collecting the resource and re-evaluating the rule.
        let v = try await verify(action, target, resourceId: target.resourceId, session)
        let after: JSONValue =
            v.status == "GONE" ? .object(["exists": false]) : ((try? await action.inspect(client, target)) ?? .null)
        let fixed = v.status != "FAIL"
        try await store.transaction(.tenant(job.tenantId)) { tx in
            guard try await ActionStore.lockedStatus(tx, id: job.actionId) == ActionStatus.executing.rawValue else { return }
            try await ActionStore.finishApply(
                tx, id: job.actionId, status: fixed ? .applied : .failed, verification: v, after: after,
                error: fixed ? nil : "verification failed: rule \(target.ruleId) still fails on the resource after the change")
            try await ActionStore.transition(
                tx, tenantId: job.tenantId, actionId: job.actionId, from: "executing", to: fixed ? "applied" : "failed",
                actor: "executor", note: fixed ? "verified: \(v.status)" : "verification failed",
                extra: ["verified": fixed ? "true" : "false", "verification": v.status])
        }
    }

    func rollback(_ job: RemediationJob, _ row: Row, _ action: FixAction, _ target: FixTarget, _ session: AWSSession) async throws {
        let before: JSONValue = try row.json("before_state")
        let outputs: [String: String] = try row.json("outputs")
        var calls: [APICall]
        if row.isNull("rollback_calls") {
            do { calls = try action.rollback(target, before, outputs) } catch let e as ServiceError { throw Permanent(message: e.message) }
            try await actions.recordRollbackPlan(job, calls: calls)
        } else {
            calls = try row.json("rollback_calls")
        }
        let from = row.isNull("rollback_calls") ? 0 : try row.int("rollback_steps_done")
        let captured = try await perform(
            job, calls, from: from, outputs: row.isNull("rollback_calls") ? [:] : try row.json("rollback_outputs"),
            client: session.client, rollback: true)
        let resource = action.recreatedResource?(target, captured) ?? target.resourceId
        let v = try await verify(action, target, resourceId: resource, session)
        // The recorded state was a failing one: rollback is verified when the rule fails again.
        let restored = v.status == "FAIL"
        try await store.transaction(.tenant(job.tenantId)) { tx in
            guard try await ActionStore.lockedStatus(tx, id: job.actionId) == ActionStatus.rollingBack.rawValue else { return }
            try await ActionStore.finishRollback(
                tx, id: job.actionId, status: restored ? .rolledBack : .rollbackFailed, verification: v, resourceId: resource,
                error: restored ? nil : "rollback verification: rule \(target.ruleId) gives \(v.status) instead of the recorded failing state")
            try await ActionStore.transition(
                tx, tenantId: job.tenantId, actionId: job.actionId, from: "rolling_back", to: restored ? "rolled_back" : "rollback_failed",
                actor: "executor", note: restored ? "verified: the recorded state is back" : "rollback verification failed",
                extra: ["verified": restored ? "true" : "false", "verification": v.status, "restored_resource_id": resource])
        }
    }
}

/// Pending approvals past their expiry become `expired`.
struct ApprovalExpiry: Sendable {
    let store: Store

    func sweep() async throws -> Int {
        let due = try await ActionStore(db: store).dueForExpiry()
        for (id, tenant) in due {
            try await store.transaction(.tenant(tenant)) { tx in
                guard try await ActionStore.expire(tx, id: id) else { return }
                try await ActionStore.transition(
                    tx, tenantId: tenant, actionId: id, from: "pending_approval", to: "expired", actor: nil,
                    note: "not decided before it expired")
            }
        }
        return due.count
    }
}
