import Bus
import Contracts
import Foundation
import Logging
import ServiceRuntime
import Store
import VigilCore

struct CheckoutRequest: Codable, Sendable {
    var plan: String?
    var interval: String?
}
struct CheckoutReply: Codable, Sendable {
    var provider: String
    /// `redirect` (pay at the URL; the plan changes when the provider confirms), `applied` (now),
    /// `scheduled` (a downgrade, at the period end).
    var status: String
    var url: String
    var plan: String
    @ExplicitNull var effectiveAt: Date?
    @ExplicitNull var sessionId: String?
}
struct PortalReply: Codable, Sendable {
    var provider: String
    var url: String
}
struct PlanCatalog: Codable, Sendable {
    var items: [Plan]
    var currency: String
}

/// Every `billing` route: plans, subscription, checkout, portal, cancel, resume.
struct SubscriptionHandlers: Sendable {
    let subs: Subscriptions
    let stripe: StripeClient?

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, PlanCatalog>(Subjects.Billing.planList)) { _, _ in PlanCatalog(items: Plans.all, currency: "usd") }
        r.add(Endpoint<Empty, SubscriptionView>(Subjects.Billing.subscriptionGet)) { _, p, ctx in
            return try await subs.store.transaction(p.scope) { tx in try await subs.view(tx, try await subs.load(tx, p.tenantId)) }
        }
        r.add(Endpoint<CheckoutRequest, CheckoutReply>(Subjects.Billing.subscriptionCheckout), handler: checkout)
        r.add(Endpoint<Empty, PortalReply>(Subjects.Billing.subscriptionPortal), handler: portal)
        r.add(Endpoint<Empty, SubscriptionView>(Subjects.Billing.subscriptionCancel)) { _, ctx in try await setCancel(true, ctx) }
        r.add(Endpoint<Empty, SubscriptionView>(Subjects.Billing.subscriptionResume)) { _, ctx in try await setCancel(false, ctx) }
    }

    /// Owners, admins and the billing role manage the subscription.
    static func requireBilling(_ ctx: CallContext) throws -> Principal {
        let p = try ctx.requirePrincipal()
        guard [.owner, .admin, .billing].contains(p.role) else {
            throw ServiceError.forbidden("managing the subscription needs the owner, admin or billing role")
        }
        return p
    }

    @Sendable func checkout(_ req: CheckoutRequest, _ ctx: CallContext) async throws -> CheckoutReply {
        let p = try Self.requireBilling(ctx)
        guard let planId = req.plan else { throw ServiceError.validation("body.plan", "field required") }
        guard let plan = Plans.byId[planId] else {
            throw ServiceError.validation("body.plan", "must be one of \(Plans.all.map(\.id).joined(separator: ", "))")
        }
        let interval = req.interval ?? "month"
        guard plan.prices.contains(where: { $0.interval == interval }) else {
            throw ServiceError.validation("body.interval", "\(plan.id) is sold per \(plan.prices.map(\.interval).joined(separator: " or "))")
        }
        let returnURL = subs.settings.publicURL + "/settings/billing"
        // Stripe, for paid plans of a workspace without a Stripe subscription yet: a Checkout session.
        if let stripe, plan.id != "free" {
            let current = try await subs.store.transaction(p.scope) { try await subs.load($0, p.tenantId) }
            if current.subscriptionId == nil {
                guard let price = stripe.settings.prices["\(plan.id):\(interval)"] else {
                    throw ServiceError(status: 409, error: "plan_not_for_sale", message: "\(plan.id) per \(interval) has no Stripe price configured")
                }
                var customer = current.customerId
                if customer == nil {
                    let c = try await stripe.call(
                        "POST", "/v1/customers", [("metadata[tenant_id]", p.tenantId), ("description", "Vigil workspace \(p.tenantSlug)")],
                        idempotencyKey: "customer-" + p.tenantId)
                    customer = c["id"] as? String
                    try await subs.store.transaction(p.scope) { tx in
                        try await subs.rows.setCustomer(tx, tenantId: p.tenantId, customerId: customer)
                    }
                }
                let session = try await stripe.call(
                    "POST", "/v1/checkout/sessions",
                    [
                        ("mode", "subscription"), ("customer", customer ?? ""), ("client_reference_id", p.tenantId),
                        ("line_items[0][price]", price), ("line_items[0][quantity]", "1"),
                        ("success_url", returnURL + "?checkout=success"), ("cancel_url", returnURL + "?checkout=canceled"),
                        ("metadata[tenant_id]", p.tenantId), ("metadata[plan]", plan.id), ("metadata[interval]", interval),
                        ("subscription_data[metadata][tenant_id]", p.tenantId), ("subscription_data[metadata][plan]", plan.id),
                    ])
                guard let url = session["url"] as? String else {
                    throw ServiceError(status: 502, error: "payment_provider_error", message: "no checkout URL returned")
                }
                return CheckoutReply(
                    provider: "stripe", status: "redirect", url: url, plan: plan.id, effectiveAt: nil, sessionId: session["id"] as? String)
            }
        }
        return try await subs.store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let s = try await subs.load(tx, p.tenantId, lock: true)
            let current = Plans.byId[s.plan] ?? Plans.free
            if plan.id == s.plan && interval == s.interval && s.status != "trialing" && s.status != "canceled" && s.scheduledPlan == nil {
                throw ServiceError.conflict("the workspace is already on \(plan.id) per \(interval)", code: "already_on_plan")
            }
            let downgrade = plan.rank < current.rank && s.status != "canceled"
            if downgrade {
                // Downgrades wait for the period end; nothing is deleted (over-limit resources turn read-only).
                try await subs.rows.scheduleChange(tx, tenantId: p.tenantId, plan: plan.id)
                try await subs.changed(
                    tx, s, change: "downgrade_scheduled", actor: p.actorId, note: "\(s.plan) → \(plan.id) at \(Timestamp.format(s.periodEnd))")
                return CheckoutReply(
                    provider: s.provider, status: "scheduled", url: returnURL, plan: plan.id, effectiveAt: s.periodEnd, sessionId: nil)
            }
            if let stripe, let subId = s.subscriptionId, let price = stripe.settings.prices["\(plan.id):\(interval)"] {
                try await stripe.setPrice(subscriptionId: subId, price: price, plan: plan.id)
            }
            // Upgrades (and choosing a plan after a trial or a cancellation) apply at once.
            try await subs.rows.applyUpgrade(tx, tenantId: p.tenantId, plan: plan.id, interval: interval, actor: p.actorId)
            try await subs.changed(tx, s, change: "upgrade", actor: p.actorId)
            return CheckoutReply(provider: s.provider, status: "applied", url: returnURL, plan: plan.id, effectiveAt: Date(), sessionId: nil)
        }
    }

    @Sendable func portal(_ req: Empty, _ ctx: CallContext) async throws -> PortalReply {
        let p = try Self.requireBilling(ctx)
        let s = try await subs.store.transaction(p.scope) { try await subs.load($0, p.tenantId) }
        let returnURL = subs.settings.publicURL + "/settings/billing"
        guard let stripe else { return PortalReply(provider: "manual", url: returnURL) }
        guard let customer = s.customerId else {
            throw ServiceError.conflict("the workspace has no payment account yet; start with a checkout", code: "no_billing_account")
        }
        let session = try await stripe.call("POST", "/v1/billing_portal/sessions", [("customer", customer), ("return_url", returnURL)])
        guard let url = session["url"] as? String else {
            throw ServiceError(status: 502, error: "payment_provider_error", message: "no portal URL returned")
        }
        return PortalReply(provider: "stripe", url: url)
    }

    func setCancel(_ cancel: Bool, _ ctx: CallContext) async throws -> SubscriptionView {
        let p = try Self.requireBilling(ctx)
        return try await subs.store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let s = try await subs.load(tx, p.tenantId, lock: true)
            if cancel {
                guard s.status != "canceled", s.plan != "free" || s.status == "trialing" else {
                    throw ServiceError.conflict("there is no paid subscription to cancel", code: "nothing_to_cancel")
                }
                guard !s.cancelAtPeriodEnd else {
                    throw ServiceError.conflict("the subscription already ends at the period end", code: "already_canceling")
                }
            } else {
                guard s.cancelAtPeriodEnd else { throw ServiceError.conflict("the subscription is not set to cancel", code: "not_canceling") }
            }
            if let stripe, let subId = s.subscriptionId {
                _ = try await stripe.call("POST", "/v1/subscriptions/\(subId)", [("cancel_at_period_end", cancel ? "true" : "false")])
            }
            try await subs.rows.setCancelAtPeriodEnd(tx, tenantId: p.tenantId, cancel: cancel, actor: p.actorId)
            try await subs.changed(tx, s, change: cancel ? "cancel_at_period_end" : "resume", actor: p.actorId)
            return try await subs.view(tx, try await subs.load(tx, p.tenantId))
        }
    }
}

/// Meters usage from events: a completed scan commits its reservation, a failed or canceled one
/// releases it (failed scans do not consume quota); an applied fix commits, a failed, rejected or
/// expired one releases. Each event is applied once (its id is recorded).
struct Meter: Sendable {
    let subs: Subscriptions
    let quotas: QuotaHandlers
    let logger: Logger

    init(subs: Subscriptions, logger: Logger) {
        self.subs = subs
        self.quotas = QuotaHandlers(subs: subs)
        self.logger = logger
    }

    struct Event: Decodable, Sendable {
        var id: String
        var type: String
        var tenantId: String?
        var data: [String: JSONValue]
    }

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        let settle: (quota: String, refKey: String, to: (String) -> String?)
        switch m.subject {
        case Events.scanCompleted.subject:
            settle = ("scans", "scan_id", { $0 == "completed" ? "committed" : "released" })
        case let s where s.hasPrefix(Events.prefix(of: "remediation")):
            settle = (
                "remediations", "action_id",
                { status in
                    switch status {
                    case "applied": "committed"
                    case "failed", "rejected", "expired": "released"
                    default: nil
                    }
                }
            )
        default:
            return .ack
        }
        do {
            let e = try JSON.decode(Event.self, from: m.data)
            guard let tenant = e.tenantId, let ref = e.data[settle.refKey]?.stringValue, let status = e.data["status"]?.stringValue,
                let to = settle.to(status)
            else { return .ack }
            let fresh = try await ProcessedEventStore(db: subs.store).claim(id: e.id, tenantId: tenant, source: "bus", type: e.type)
            guard fresh else { return .ack }
            do {
                _ = try await quotas.settle(SettleRequest(quota: settle.quota, ref: ref), tenantId: tenant, to: to)
            } catch let err as ServiceError where err.status == 404 {
                // Work accepted before quotas existed (or never reserved): nothing to settle.
            }
            return .ack
        } catch let e as DecodingError {
            logger.error("undecodable event dropped by the meter", metadata: ["subject": "\(m.subject)", "error": "\(e)"])
            return .drop
        } catch {
            try? await ProcessedEventStore(db: subs.store).forget(id: (try? JSON.decode(Event.self, from: m.data).id) ?? "")
            return .retry(after: StreamConsumer.backoff(attempt: m.deliveryCount, cap: .seconds(30)))
        }
    }
}
