import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

struct ReserveRequest: Codable, Sendable {
    var quota: String
    var ref: String
    var amount: Int?
}
struct SettleRequest: Codable, Sendable {
    var quota: String
    var ref: String
}
struct GaugeRequest: Codable, Sendable {
    var quota: String
    var inUse: Int
    var adding: Int?
}
struct ReserveReply: Codable, Sendable {
    var reservationId: String
    var quota: String
    var limit: Int?
    var used: Int
    var reserved: Int
    var remaining: Int?
    var limits: PlanLimits
    var plan: String
}
struct SettleReply: Codable, Sendable {
    var ref: String
    var status: String
}
struct GaugeReply: Codable, Sendable {
    var quota: String
    var limit: Int?
    var inUse: Int
    var allowed: Bool
}
struct LimitsReply: Codable, Sendable {
    var plan: String
    var status: String
    var restricted: Bool
    var limits: PlanLimits
    var features: [String]
}
struct BalanceReply: Codable, Sendable {
    var plan: String
    var status: String
    var periodStart: Date
    var periodEnd: Date
    var restricted: Bool
    var quotas: [String: QuotaBalance]
}

/// Quotas over the bus. Counter quotas (scans, remediations) are reserved before the work is accepted,
/// committed when it counts and released when it does not; the usage row is locked, so concurrent
/// reservations never oversell. Gauge quotas (connections, seats) are checked against the count the
/// owning service reports. Services call these with the workspace in `Vigil-Tenant-Id`.
struct QuotaHandlers: Sendable {
    let subs: Subscriptions

    func register(on r: ServiceResponder) {
        r.add(Endpoint<ReserveRequest, ReserveReply>(Subjects.Billing.quotaReserve), handler: reserve)
        r.add(Endpoint<SettleRequest, SettleReply>(Subjects.Billing.quotaCommit)) { q, ctx in
            try await settle(q, tenantId: try Self.tenant(ctx), to: "committed")
        }
        r.add(Endpoint<SettleRequest, SettleReply>(Subjects.Billing.quotaRelease)) { q, ctx in
            try await settle(q, tenantId: try Self.tenant(ctx), to: "released")
        }
        r.add(Endpoint<GaugeRequest, GaugeReply>(Subjects.Billing.quotaCheck), handler: check)
        r.add(Endpoint<Empty, LimitsReply>(Subjects.Billing.planLimits)) { _, ctx in
            let t = try Self.tenant(ctx)
            return try await subs.store.transaction(.tenant(t)) { tx in
                let s = try await subs.load(tx, t)
                let (plan, restricted) = subs.effective(s)
                return LimitsReply(plan: plan.id, status: s.status, restricted: restricted, limits: plan.limits, features: plan.features)
            }
        }
        r.add(Endpoint<Empty, BalanceReply>(Subjects.Billing.quotaBalance)) { _, ctx in
            let p = try ctx.requirePrincipal()
            return try await subs.store.transaction(p.scope) { tx in
                let s = try await subs.load(tx, p.tenantId)
                return BalanceReply(
                    plan: subs.effective(s).plan.id, status: s.status, periodStart: s.periodStart, periodEnd: s.periodEnd,
                    restricted: subs.effective(s).restricted, quotas: try await subs.balances(tx, s))
            }
        }
    }

    /// The workspace: the principal's, or the tenant header of a service call.
    static func tenant(_ ctx: CallContext) throws -> String {
        if let p = ctx.optionalPrincipal { return p.tenantId }
        guard let t = ctx.tenantId, ID.isValid(t) else { throw ServiceError.validation("header.Vigil-Tenant-Id", "required") }
        return t.lowercased()
    }

    static func validRef(_ q: String, _ ref: String, counters: Bool) throws {
        guard (counters ? Plans.counters : Plans.gauges).contains(q) else {
            throw ServiceError.validation("body.quota", "must be one of \((counters ? Plans.counters : Plans.gauges).joined(separator: ", "))")
        }
        guard (1...200).contains(ref.count) else { throw ServiceError.validation("body.ref", "must be 1 to 200 characters") }
    }

    @Sendable func reserve(_ q: ReserveRequest, _ ctx: CallContext) async throws -> ReserveReply {
        let t = try Self.tenant(ctx)
        try Self.validRef(q.quota, q.ref, counters: true)
        let amount = q.amount ?? 1
        guard (1...10_000).contains(amount) else { throw ServiceError.validation("body.amount", "must be between 1 and 10000") }
        return try await subs.store.transaction(.tenant(t)) { tx in
            let s = try await subs.load(tx, t)
            let plan = subs.effective(s).plan
            let limit = plan.limits.limit(q.quota)
            _ = try await tx.execute(
                "INSERT INTO billing.usage (tenant_id, period_start, quota) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [t, s.periodStart, q.quota])
            let row = try await tx.one(
                "SELECT used, reserved FROM billing.usage WHERE tenant_id = $1 AND period_start = $2 AND quota = $3 FOR UPDATE",
                [t, s.periodStart, q.quota])!
            let used = try row.int("used")
            var reserved = try row.int("reserved")
            if let existing = try await tx.one(
                "SELECT id FROM billing.reservations WHERE tenant_id = $1 AND quota = $2 AND ref = $3", [t, q.quota, q.ref])
            {
                return ReserveReply(
                    reservationId: try existing.string("id"), quota: q.quota, limit: limit, used: used, reserved: reserved,
                    remaining: limit.map { max(0, $0 - used - reserved) }, limits: plan.limits, plan: plan.id)
            }
            if let limit, used + reserved + amount > limit {
                throw ServiceError.quotaExceeded(
                    QuotaDetail(name: q.quota, limit: limit, used: used + reserved, resetsAt: Timestamp.format(s.periodEnd)))
            }
            let id = ID.make()
            _ = try await tx.execute(
                """
                INSERT INTO billing.reservations (id, tenant_id, quota, ref, amount, period_start, status) VALUES ($1, $2, $3, $4, $5, $6, 'reserved')
                """, [id, t, q.quota, q.ref, amount, s.periodStart])
            _ = try await tx.execute(
                "UPDATE billing.usage SET reserved = reserved + $4 WHERE tenant_id = $1 AND period_start = $2 AND quota = $3",
                [t, s.periodStart, q.quota, amount])
            reserved += amount
            return ReserveReply(
                reservationId: id, quota: q.quota, limit: limit, used: used, reserved: reserved,
                remaining: limit.map { max(0, $0 - used - reserved) }, limits: plan.limits, plan: plan.id)
        }
    }

    /// Commits (counts it) or releases (gives it back) a reservation; settling twice changes nothing.
    func settle(_ q: SettleRequest, tenantId t: String, to: String) async throws -> SettleReply {
        try Self.validRef(q.quota, q.ref, counters: true)
        return try await subs.store.transaction(.tenant(t)) { tx in
            guard
                let r = try await tx.one(
                    "SELECT * FROM billing.reservations WHERE tenant_id = $1 AND quota = $2 AND ref = $3 FOR UPDATE",
                    [t, q.quota, q.ref])
            else { throw ServiceError.notFound("reservation") }
            let status = try r.string("status")
            guard status == "reserved" else { return SettleReply(ref: q.ref, status: status) }
            let amount = try r.int("amount")
            _ = try await tx.execute("UPDATE billing.reservations SET status = $2, settled_at = now() WHERE id = $1", [try r.string("id"), to])
            _ = try await tx.execute(
                """
                UPDATE billing.usage SET reserved = greatest(0, reserved - $4), used = used + CASE WHEN $5 = 'committed' THEN $4 ELSE 0 END
                WHERE tenant_id = $1 AND period_start = $2::timestamptz AND quota = $3
                """, [t, try r.string("period_start"), q.quota, amount, to])
            if to == "committed" {
                try await tx.emit(
                    Events.billingUsageRecorded, tenantId: t,
                    data: ["quota": q.quota, "ref": q.ref, "amount": String(amount)])
            }
            return SettleReply(ref: q.ref, status: to)
        }
    }

    @Sendable func check(_ q: GaugeRequest, _ ctx: CallContext) async throws -> GaugeReply {
        let t = try Self.tenant(ctx)
        try Self.validRef(q.quota, "gauge", counters: false)
        let adding = q.adding ?? 0
        guard q.inUse >= 0, (0...10_000).contains(adding) else { throw ServiceError.validation("body.in_use", "must be 0 or more") }
        return try await subs.store.transaction(.tenant(t)) { tx in
            let s = try await subs.load(tx, t)
            let limit = subs.effective(s).plan.limits.limit(q.quota)
            let allowed = limit.map { q.inUse + adding <= $0 } ?? true
            _ = try await tx.execute(
                """
                INSERT INTO billing.gauges (tenant_id, quota, in_use) VALUES ($1, $2, $3)
                ON CONFLICT (tenant_id, quota) DO UPDATE SET in_use = $3, reported_at = now()
                """, [t, q.quota, allowed ? q.inUse + adding : q.inUse])
            if !allowed, adding > 0, let limit {
                throw ServiceError.quotaExceeded(QuotaDetail(name: q.quota, limit: limit, used: q.inUse, resetsAt: nil))
            }
            return GaugeReply(quota: q.quota, limit: limit, inUse: q.inUse + (allowed ? adding : 0), allowed: allowed)
        }
    }
}
