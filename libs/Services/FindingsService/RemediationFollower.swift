import Bus
import Contracts
import Foundation
import Logging
import ServiceRuntime
import Store
import VigilCore

/// Follows `vigil.events.remediation.>`: a fix that was applied and verified resolves its finding; a
/// verified rollback reopens it. Transitions are conditional on the current status, so a redelivered
/// event changes nothing.
struct RemediationFollower: Sendable {
    let store: Store
    let logger: Logger

    struct Outcome: Decodable, Sendable {
        var actionId: String
        var findingId: String
        var action: String
        var verified: String?
        var verification: String?
        var resourceId: String?
        var restoredResourceId: String?
    }

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        let target: (from: String, to: String, event: String)
        switch m.subject {
        case Events.remediationApplied.subject: target = ("open", "resolved", "resolved")
        case Events.remediationRolledBack.subject: target = ("resolved", "open", "reopened")
        default: return .ack
        }
        do {
            let env = try JSON.decode(EventEnvelope<Outcome>.self, from: m.data)
            guard let tenant = env.tenantId, env.data.verified == "true", ID.isValid(env.data.findingId) else { return .ack }
            let o = env.data
            // A rollback that recreated the resource (new id) leaves the old finding resolved; the
            // next scan opens a finding for the new resource.
            if let restored = o.restoredResourceId, restored != o.resourceId { return .ack }
            try await store.transaction(.tenant(tenant)) { tx in
                guard
                    let row = try await FindingStore.load(tx, id: o.findingId, tenantId: tenant, lock: true),
                    try row.string("status") == target.from
                else { return }
                let reason =
                    target.to == "resolved"
                    ? "fixed by remediation \(o.actionId) (\(o.action)), verified: \(o.verification ?? "PASS")"
                    : "remediation \(o.actionId) (\(o.action)) was rolled back"
                try await FindingStore.setOutcome(
                    tx, id: o.findingId, tenantId: tenant, to: target.to, reason: reason, actor: "remediation:" + o.actionId)
                try await Lifecycle.record(
                    tx, tenantId: tenant,
                    [
                        Transition(
                            findingId: o.findingId, connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
                            severity: try row.string("severity"), eventType: target.event, from: target.from, to: target.to,
                            actor: "remediation:" + o.actionId, reason: reason, scanId: nil, resourceId: try row.string("resource_id"),
                            title: try row.string("title"))
                    ])
            }
            return .ack
        } catch let e as DecodingError {
            logger.error("undecodable remediation event dropped", metadata: ["subject": "\(m.subject)", "error": "\(e)"])
            return .drop
        } catch {
            logger.warning("remediation event not applied; will retry", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
            return .retry(after: StreamConsumer.backoff(attempt: m.deliveryCount, cap: .seconds(30)))
        }
    }
}
