import Contracts
import Foundation
import Store
import VigilCore

/// Every statement on `billing.subscriptions` and `billing.history`, and the reads of `billing.usage` and
/// `billing.gauges` a subscription view needs: one row per workspace, its plan and period, and the
/// history of every change.
struct SubscriptionStore: Sendable {
    let db: Store

    func find(_ tx: Transaction, tenantId: String, lock: Bool = false) async throws -> Subscription? {
        try await tx.one("SELECT * FROM billing.subscriptions WHERE tenant_id = $1" + (lock ? " FOR UPDATE" : ""), [tenantId])
            .map(Subscription.init)
    }

    /// Creates the workspace's subscription unless another request just did.
    func create(
        _ tx: Transaction, tenantId: String, plan: String, status: String, periodStart: Date, periodEnd: Date, trialEnd: Date?
    ) async throws {
        _ = try await tx.execute(
            """
            INSERT INTO billing.subscriptions (tenant_id, plan, status, current_period_start, current_period_end, trial_end)
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO NOTHING
            """, [tenantId, plan, status, periodStart, periodEnd, trialEnd])
    }

    struct HistoryEntry {
        var change: String
        var fromPlan: String?
        var toPlan: String
        var fromStatus: String?
        var toStatus: String
        var actor: String?
        var note: String?
    }

    func appendHistory(_ tx: Transaction, tenantId: String, _ h: HistoryEntry) async throws {
        _ = try await tx.execute(
            """
            INSERT INTO billing.history (tenant_id, change, from_plan, to_plan, from_status, to_status, actor, note)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """, [tenantId, h.change, h.fromPlan, h.toPlan, h.fromStatus, h.toStatus, h.actor, h.note])
    }

    /// This period's used and reserved units per counted quota.
    func usage(_ tx: Transaction, tenantId: String, periodStart: Date) async throws -> [String: (used: Int, reserved: Int)] {
        var out: [String: (used: Int, reserved: Int)] = [:]
        for r in try await tx.query(
            "SELECT quota, used, reserved FROM billing.usage WHERE tenant_id = $1 AND period_start = $2", [tenantId, periodStart])
        {
            out[try r.string("quota")] = (try r.int("used"), try r.int("reserved"))
        }
        return out
    }

    /// What other services last reported in use per gauged quota (connections, seats).
    func gauges(_ tx: Transaction, tenantId: String) async throws -> [String: Int] {
        var out: [String: Int] = [:]
        for r in try await tx.query("SELECT quota, in_use FROM billing.gauges WHERE tenant_id = $1", [tenantId]) {
            out[try r.string("quota")] = try r.int("in_use")
        }
        return out
    }

    /// Workspaces with a period to roll over, a trial to end or a scheduled change due (at most 500 a sweep).
    func dueForSweep() async throws -> [String] {
        try await db.query(
            .crossTenant,
            """
            SELECT tenant_id FROM billing.subscriptions
            WHERE (current_period_end <= now() AND (provider_subscription_id IS NULL OR status = 'canceled'))
               OR (status = 'trialing' AND trial_end <= now()) OR (scheduled_plan IS NOT NULL AND scheduled_at <= now()) LIMIT 500
            """
        ).map { try $0.string("tenant_id") }
    }

    struct PeriodState {
        var plan: String
        var status: String
        var cancelAtPeriodEnd: Bool
        var scheduledPlan: String?
        var periodStart: Date
        var periodEnd: Date
        var trialEnd: Date?
    }

    /// What a sweep decided: plan, status, period, trial and schedule.
    func applyPeriod(_ tx: Transaction, tenantId: String, _ p: PeriodState) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET plan = $2, status = $3, cancel_at_period_end = $4, scheduled_plan = $5,
              current_period_start = $6,
              current_period_end = $7, trial_end = $8, scheduled_at = CASE WHEN $5::text IS NULL THEN NULL ELSE scheduled_at END,
              updated_at = now() WHERE tenant_id = $1
            """, [tenantId, p.plan, p.status, p.cancelAtPeriodEnd, p.scheduledPlan, p.periodStart, p.periodEnd, p.trialEnd])
    }

    func setCustomer(_ tx: Transaction, tenantId: String, customerId: String?) async throws {
        _ = try await tx.execute(
            "UPDATE billing.subscriptions SET provider_customer_id = $2, updated_at = now() WHERE tenant_id = $1", [tenantId, customerId])
    }

    /// A downgrade waits for the period end.
    func scheduleChange(_ tx: Transaction, tenantId: String, plan: String) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET scheduled_plan = $2, scheduled_at = current_period_end, updated_at = now() WHERE tenant_id = $1
            """, [tenantId, plan])
    }

    /// An upgrade (or a plan chosen after a trial or a cancellation) applies at once.
    func applyUpgrade(_ tx: Transaction, tenantId: String, plan: String, interval: String, actor: String) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET plan = $2, interval = $3, status = CASE WHEN status IN ('trialing',
              'canceled') THEN 'active' ELSE status END,
              trial_end = NULL, scheduled_plan = NULL, cancel_at_period_end = false, updated_by = $4, updated_at = now() WHERE tenant_id = $1
            """, [tenantId, plan, interval, actor])
    }

    func setCancelAtPeriodEnd(_ tx: Transaction, tenantId: String, cancel: Bool, actor: String) async throws {
        _ = try await tx.execute(
            "UPDATE billing.subscriptions SET cancel_at_period_end = $2, updated_by = $3, updated_at = now() WHERE tenant_id = $1",
            [tenantId, cancel, actor])
    }

    // MARK: Stripe

    func tenant(forCustomer customer: String) async throws -> String? {
        try await db.query(.crossTenant, "SELECT tenant_id FROM billing.subscriptions WHERE provider_customer_id = $1", [customer])
            .first?.string("tenant_id")
    }

    func stripeCheckoutCompleted(
        _ tx: Transaction, tenantId: String, customer: String?, subscription: String?, plan: String, interval: String
    ) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET provider = 'stripe', provider_customer_id = coalesce($2, provider_customer_id),
              provider_subscription_id = coalesce($3, provider_subscription_id), plan = $4, interval = $5, status = 'active', trial_end = NULL,
              scheduled_plan = NULL, past_due_since = NULL, cancel_at_period_end = false, updated_at = now() WHERE tenant_id = $1
            """, [tenantId, customer, subscription, plan, interval])
    }

    struct StripeSubscription {
        var customer: String?
        var id: String?
        var plan: String
        var interval: String
        var status: String
        var periodStart: Date?
        var periodEnd: Date?
        var cancelAtPeriodEnd: Bool
        var trialEnd: Date?
    }

    func stripeSubscriptionChanged(_ tx: Transaction, tenantId: String, _ s: StripeSubscription) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET provider = 'stripe', provider_customer_id = coalesce($2, provider_customer_id),
              provider_subscription_id = $3,
              plan = $4, interval = $5, status = $6, current_period_start = coalesce($7, current_period_start),
              current_period_end = coalesce($8, current_period_end), cancel_at_period_end = $9, trial_end = $10,
              past_due_since = CASE WHEN $6 = 'past_due' THEN coalesce(past_due_since, now()) ELSE NULL END,
              scheduled_plan = CASE WHEN $4 = scheduled_plan THEN NULL ELSE scheduled_plan END, updated_at = now() WHERE tenant_id = $1
            """,
            [tenantId, s.customer, s.id, s.plan, s.interval, s.status, s.periodStart, s.periodEnd, s.cancelAtPeriodEnd, s.trialEnd])
    }

    func stripeSubscriptionDeleted(_ tx: Transaction, tenantId: String) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET status = 'canceled', plan = 'free', cancel_at_period_end = false, scheduled_plan = NULL,
              provider_subscription_id = NULL, past_due_since = NULL, updated_at = now() WHERE tenant_id = $1
            """, [tenantId])
    }

    func stripeInvoicePaid(_ tx: Transaction, tenantId: String) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET status = CASE WHEN status IN ('past_due', 'incomplete') THEN 'active' ELSE status END,
              past_due_since = NULL, updated_at = now() WHERE tenant_id = $1
            """, [tenantId])
    }

    func stripePaymentFailed(_ tx: Transaction, tenantId: String) async throws {
        _ = try await tx.execute(
            """
            UPDATE billing.subscriptions SET status = 'past_due', past_due_since = coalesce(past_due_since, now()), updated_at = now()
            WHERE tenant_id = $1 AND status <> 'canceled'
            """, [tenantId])
    }
}
