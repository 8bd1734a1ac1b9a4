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
        r.add(Endpoint<Empty, BalanceReply>(Subjects.Billing.quotaBalance)) { _, p, ctx in
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
            let counts = try await QuotaStore().lockUsage(tx, tenantId: t, periodStart: s.periodStart, quota: q.quota)
            let used = counts.used
            var reserved = counts.reserved
            if let existing = try await QuotaStore().reservationId(tx, tenantId: t, quota: q.quota, ref: q.ref) {
                return ReserveReply(
                    reservationId: existing, quota: q.quota, limit: limit, used: used, reserved: reserved,
                    remaining: limit.map { max(0, $0 - used - reserved) }, limits: plan.limits, plan: plan.id)
            }
            if let limit, used + reserved + amount > limit {
                throw ServiceError.quotaExceeded(
                    QuotaDetail(name: q.quota, limit: limit, used: used + reserved, resetsAt: Timestamp.format(s.periodEnd)))
            }
            let id = ID.make()
            try await QuotaStore().reserve(tx, id: id, tenantId: t, quota: q.quota, ref: q.ref, amount: amount, periodStart: s.periodStart)
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
            guard let r = try await QuotaStore().lockReservation(tx, tenantId: t, quota: q.quota, ref: q.ref) else {
                throw ServiceError.notFound("reservation")
            }
            guard r.status == "reserved" else { return SettleReply(ref: q.ref, status: r.status) }
            let amount = r.amount
            try await QuotaStore().settle(tx, tenantId: t, quota: q.quota, r, to: to)
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
            try await QuotaStore().setGauge(tx, tenantId: t, quota: q.quota, inUse: allowed ? q.inUse + adding : q.inUse)
            if !allowed, adding > 0, let limit {
                throw ServiceError.quotaExceeded(QuotaDetail(name: q.quota, limit: limit, used: q.inUse, resetsAt: nil))
            }
            return GaugeReply(quota: q.quota, limit: limit, inUse: q.inUse + (allowed ? adding : 0), allowed: allowed)
        }
    }
}
