import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct ScanPolicyPatch: Codable, Sendable {
    var global: ScanPolicy.Thresholds?
    /// Per-service overrides; `null` removes one.
    var services: [String: ScanPolicy.Thresholds?]?
}

struct ScanPolicyView: Codable, Sendable {
    var global: ScanPolicy.Thresholds
    var services: [String: ScanPolicy.Thresholds]
    /// Every service's thresholds as the next scan applies them.
    var effective: [String: ScanPolicy.Thresholds]
    var updatedBy: String?
    var updatedAt: Date?
}

/// `GET/PATCH /settings/scan-policy`: the workspace's utilisation thresholds, validated, audited (an
/// event per change) and applied by the next scan.
struct ScanPolicyHandlers: Sendable {
    let store: Store

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, ScanPolicyView>(Subjects.Scans.scanPolicyGet)) { _, p, _ in
            try await store.transaction(p.scope) { tx in Self.view(try await ScanPolicyStore.load(tx, tenantId: p.tenantId)) }
        }
        r.add(Endpoint<ScanPolicyPatch, ScanPolicyView>(Subjects.Scans.scanPolicyUpdate), handler: update)
    }

    static func view(_ s: ScanPolicyStore.Stored) -> ScanPolicyView {
        var effective: [String: ScanPolicy.Thresholds] = [:]
        for svc in ScanPolicy.overridable { effective[svc] = s.policy.thresholds(for: svc) }
        return ScanPolicyView(
            global: ScanPolicy.defaults.merged(s.policy.global), services: s.policy.services, effective: effective, updatedBy: s.updatedBy,
            updatedAt: s.updatedAt)
    }

    static func issues(_ t: ScanPolicy.Thresholds, path: String) -> [ValidationIssue] {
        var out: [ValidationIssue] = []
        func check(_ v: Double?, _ name: String, _ range: ClosedRange<Double>) {
            if let v, !range.contains(v) || v.isNaN {
                out.append(.init(path: "\(path).\(name)", message: "must be between \(Int(range.lowerBound)) and \(Int(range.upperBound))"))
            }
        }
        check(t.cpuPercent, "cpu_percent", 0...100)
        check(t.networkMb, "network_mb", 0...1_000_000)
        check(t.connections, "connections", 0...1_000_000)
        check(t.requests, "requests", 0...1_000_000_000)
        check(t.lookbackDays.map(Double.init), "lookback_days", 1...90)
        check(t.minMonthlySavings, "min_monthly_savings", 0...1_000_000)
        check(t.ageDays.map(Double.init), "age_days", 1...3650)
        return out
    }

    @Sendable func update(_ q: ScanPolicyPatch, _ p: Principal, _ ctx: CallContext) async throws -> ScanPolicyView {
        var problems: [ValidationIssue] = []
        if let g = q.global { problems += Self.issues(g, path: "body.global") }
        for (svc, t) in q.services ?? [:] {
            if !ScanPolicy.overridable.contains(svc) {
                problems.append(
                    .init(path: "body.services.\(svc)", message: "unknown service; one of \(ScanPolicy.overridable.sorted().joined(separator: ", "))")
                )
            } else if let t {
                problems += Self.issues(t, path: "body.services.\(svc)")
            }
        }
        if q.global == nil && q.services == nil { problems.append(.init(path: "body", message: "give global and/or services")) }
        guard problems.isEmpty else { throw ServiceError.validation(problems) }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            var policy = try await ScanPolicyStore.load(tx, tenantId: p.tenantId).policy
            policy.global = policy.global.merged(q.global)
            for (svc, t) in q.services ?? [:] {
                if let t { policy.services[svc] = (policy.services[svc] ?? ScanPolicy.Thresholds()).merged(t) } else { policy.services[svc] = nil }
            }
            try await ScanPolicyStore.save(tx, tenantId: p.tenantId, policy, by: p.actorId)
            try await tx.emit(Events.scanPolicyUpdated, tenantId: p.tenantId, data: ["actor": p.actorId])
            return Self.view(try await ScanPolicyStore.load(tx, tenantId: p.tenantId))
        }
    }
}
