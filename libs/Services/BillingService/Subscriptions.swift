import Bus
import Contracts
import Foundation
import Logging
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

/// A workspace's subscription as stored.
struct Subscription: Sendable {
    var tenantId: String
    var plan: String
    var interval: String
    var status: String
    var periodStart: Date
    var periodEnd: Date
    var cancelAtPeriodEnd: Bool
    var trialEnd: Date?
    var scheduledPlan: String?
    var scheduledAt: Date?
    var pastDueSince: Date?
    var provider: String
    var customerId: String?
    var subscriptionId: String?

    init(_ r: Row) throws {
        tenantId = try r.string("tenant_id")
        plan = try r.string("plan")
        interval = try r.string("interval")
        status = try r.string("status")
        periodStart = try r.date("current_period_start")
        periodEnd = try r.date("current_period_end")
        cancelAtPeriodEnd = try r.bool("cancel_at_period_end")
        trialEnd = r.optionalDate("trial_end")
        scheduledPlan = r.optionalString("scheduled_plan")
        scheduledAt = r.optionalDate("scheduled_at")
        pastDueSince = r.optionalDate("past_due_since")
        provider = try r.string("provider")
        customerId = r.optionalString("provider_customer_id")
        subscriptionId = r.optionalString("provider_subscription_id")
    }
}

struct QuotaBalance: Codable, Sendable {
    var name: String
    /// Unlimited (and "never resets") are explicit nulls.
    @ExplicitNull var limit: Int?
    var used: Int
    var reserved: Int
    @ExplicitNull var remaining: Int?
    @ExplicitNull var resetsAt: Date?
}

struct SubscriptionView: Codable, Sendable {
    var plan: String
    var planName: String
    var interval: String
    var status: String
    var currentPeriodStart: Date
    var currentPeriodEnd: Date
    var cancelAtPeriodEnd: Bool
    @ExplicitNull var trialEnd: Date?
    @ExplicitNull var scheduledPlan: String?
    var provider: String
    /// Past due beyond the grace period: the free plan's limits apply until paid.
    var restricted: Bool
    var limits: PlanLimits
    var features: [String]
    var usage: [String: QuotaBalance]
}

/// The subscription model: lazy trial creation, the effective plan (grace, restriction), usage.
struct Subscriptions: Sendable {
    let store: Store
    let settings: BillingSettings
    var rows: SubscriptionStore { SubscriptionStore(db: store) }

    static func addMonths(_ d: Date, _ n: Int) -> Date {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.date(byAdding: .month, value: n, to: d) ?? d.addingTimeInterval(Double(n) * 30 * 86400)
    }

    /// The workspace's subscription, created on first use as a trial of the trial plan.
    func load(_ tx: Transaction, _ tenantId: String, lock: Bool = false) async throws -> Subscription {
        if let s = try await rows.find(tx, tenantId: tenantId, lock: lock) { return s }
        let trial = settings.trialDays > 0 && Plans.byId[settings.trialPlan] != nil
        let now = Date()
        let (plan, status) = trial ? (settings.trialPlan, "trialing") : ("free", "active")
        try await rows.create(
            tx, tenantId: tenantId, plan: plan, status: status, periodStart: now, periodEnd: Self.addMonths(now, 1),
            trialEnd: trial ? now.addingTimeInterval(Double(settings.trialDays) * 86400) : nil)
        try await rows.appendHistory(
            tx, tenantId: tenantId,
            .init(
                change: "created", fromPlan: nil, toPlan: plan, fromStatus: nil, toStatus: status, actor: nil,
                note: trial ? "\(settings.trialDays)-day trial" : nil))
        guard let created = try await rows.find(tx, tenantId: tenantId, lock: lock) else {
            throw ServiceError(status: 500, error: "internal_error", message: "the subscription was not created")
        }
        return created
    }

    /// The plan whose limits apply now, and whether the workspace is restricted (past due beyond grace).
    func effective(_ s: Subscription, now: Date = Date()) -> (plan: Plan, restricted: Bool) {
        if s.status == "canceled" { return (Plans.free, false) }
        if s.status == "past_due", let since = s.pastDueSince, now > since.addingTimeInterval(Double(settings.graceDays) * 86400) {
            return (Plans.free, true)
        }
        return (Plans.byId[s.plan] ?? Plans.free, false)
    }

    func balances(_ tx: Transaction, _ s: Subscription) async throws -> [String: QuotaBalance] {
        let plan = effective(s).plan
        var out: [String: QuotaBalance] = [:]
        let byQuota = try await rows.usage(tx, tenantId: s.tenantId, periodStart: s.periodStart)
        for q in Plans.counters {
            let (used, reserved) = byQuota[q] ?? (used: 0, reserved: 0)
            let limit = plan.limits.limit(q)
            out[q] = QuotaBalance(
                name: q, limit: limit, used: used, reserved: reserved, remaining: limit.map { max(0, $0 - used - reserved) },
                resetsAt: s.periodEnd)
        }
        let inUse = try await rows.gauges(tx, tenantId: s.tenantId)
        for q in Plans.gauges {
            let limit = plan.limits.limit(q)
            let used = inUse[q] ?? 0
            out[q] = QuotaBalance(name: q, limit: limit, used: used, reserved: 0, remaining: limit.map { max(0, $0 - used) }, resetsAt: nil)
        }
        out["api_requests_per_minute"] = QuotaBalance(
            name: "api_requests_per_minute", limit: plan.limits.apiRequestsPerMinute, used: 0, reserved: 0,
            remaining: plan.limits.apiRequestsPerMinute, resetsAt: nil)
        return out
    }

    func view(_ tx: Transaction, _ s: Subscription) async throws -> SubscriptionView {
        let (plan, restricted) = effective(s)
        return SubscriptionView(
            plan: s.plan, planName: Plans.byId[s.plan]?.name ?? s.plan, interval: s.interval, status: s.status,
            currentPeriodStart: s.periodStart, currentPeriodEnd: s.periodEnd, cancelAtPeriodEnd: s.cancelAtPeriodEnd,
            trialEnd: s.trialEnd, scheduledPlan: s.scheduledPlan, provider: s.provider, restricted: restricted,
            limits: plan.limits, features: plan.features, usage: try await balances(tx, s))
    }

    /// Records a change in the history and publishes `billing.subscription_updated`.
    func changed(_ tx: Transaction, _ before: Subscription, change: String, actor: String?, note: String? = nil) async throws {
        let after = try await load(tx, before.tenantId)
        try await rows.appendHistory(
            tx, tenantId: before.tenantId,
            .init(
                change: change, fromPlan: before.plan, toPlan: after.plan, fromStatus: before.status, toStatus: after.status, actor: actor,
                note: note))
        var data: [String: String] = [
            "plan": after.plan, "status": after.status, "change": change, "previous_plan": before.plan,
            "previous_status": before.status, "cancel_at_period_end": after.cancelAtPeriodEnd ? "true" : "false",
        ]
        if let actor { data["actor"] = actor }
        if let s = after.scheduledPlan { data["scheduled_plan"] = s }
        try await tx.emit(Events.billingSubscriptionUpdated, tenantId: before.tenantId, data: data)
    }
}

/// Rolls periods over (usage counters start again), ends trials, and applies what was scheduled for
/// the period end (downgrades, cancellations) — for subscriptions whose periods this service keeps.
struct PeriodSweeper: Sendable {
    let subs: Subscriptions
    let stripe: StripeClient?
    let logger: Logger

    func sweep(now: Date = Date()) async throws -> Int {
        let due = try await subs.rows.dueForSweep()
        for t in due {
            do { try await sweep(tenant: t, now: now) } catch {
                logger.warning("billing sweep of a workspace failed; retried next time", metadata: ["tenant_id": "\(t)", "error": "\(error)"])
            }
        }
        return due.count
    }

    func sweep(tenant t: String, now: Date) async throws {
        do {
            try await subs.store.transaction(.tenant(t)) { tx in
                let s = try await subs.load(tx, t, lock: true)
                var plan = s.plan
                var status = s.status
                var cancel = s.cancelAtPeriodEnd
                var scheduled = s.scheduledPlan
                var start = s.periodStart
                var end = s.periodEnd
                var trialEnd = s.trialEnd
                var notes: [String] = []
                if status == "trialing", let te = trialEnd, te <= now {
                    if s.subscriptionId == nil {
                        plan = "free"
                        notes.append("trial ended without a paid plan")
                    }
                    status = "active"
                    trialEnd = nil
                }
                var rolled = false
                if end <= now && (s.subscriptionId == nil || s.status == "canceled") {
                    rolled = true
                    while end <= now {
                        start = end
                        end = Subscriptions.addMonths(end, s.interval == "year" ? 12 : 1)
                    }
                    notes.append("period rolled over")
                    if cancel {
                        plan = "free"
                        status = "canceled"
                        cancel = false
                        scheduled = nil
                        notes.append("canceled at period end")
                    }
                }
                // A downgrade scheduled for the period end; a Stripe subscription changes price then too.
                if let next = scheduled, rolled || (s.scheduledAt.map { $0 <= now } ?? false) {
                    if let subId = s.subscriptionId, s.status != "canceled", let stripe {
                        guard let price = stripe.settings.prices["\(next):\(s.interval)"] else {
                            throw ServiceError(
                                status: 409, error: "plan_not_for_sale", message: "\(next) per \(s.interval) has no Stripe price configured")
                        }
                        try await stripe.setPrice(subscriptionId: subId, price: price, plan: next)
                    }
                    plan = next
                    scheduled = nil
                    notes.append("scheduled change to \(next) applied")
                }
                try await subs.rows.applyPeriod(
                    tx, tenantId: t,
                    .init(
                        plan: plan, status: status, cancelAtPeriodEnd: cancel, scheduledPlan: scheduled, periodStart: start, periodEnd: end,
                        trialEnd: trialEnd))
                try await subs.changed(tx, s, change: "period", actor: "billing", note: notes.joined(separator: "; "))
            }
        }
    }
}
