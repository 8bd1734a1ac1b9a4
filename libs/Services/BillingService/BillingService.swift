import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

/// Billing settings.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_BILLING_TRIAL_PLAN / _TRIAL_DAYS | `pro`, `14` | what a new workspace starts on (status `trialing`); after the trial it is on `free` unless it paid |
/// | VIGIL_BILLING_GRACE_DAYS | `7` | a `past_due` workspace keeps its plan this long, then gets the free plan's limits until paid |
/// | VIGIL_BILLING_SWEEP_SECONDS | `60` | how often periods roll over, trials end and scheduled changes apply |
/// | VIGIL_STRIPE_SECRET_KEY | unset (manual provider) | Stripe API key; with it, checkout and portal go to Stripe |
/// | VIGIL_STRIPE_API_BASE | `https://api.stripe.com` | Stripe's API base (a local emulator in tests) |
/// | VIGIL_STRIPE_WEBHOOK_SECRET | unset | `whsec_…` secret that signs Stripe's webhooks; unset refuses every webhook |
/// | VIGIL_STRIPE_WEBHOOK_TOLERANCE_SECONDS | `300` | how old a webhook signature may be |
/// | VIGIL_STRIPE_PRICE_<PLAN>_<INTERVAL> | unset | the Stripe price id of a plan and interval (e.g. VIGIL_STRIPE_PRICE_PRO_MONTH) |
/// | VIGIL_PUBLIC_URL | `http://127.0.0.1:8080` | where checkout and portal return to |
struct BillingSettings: Sendable {
    var trialPlan: String
    var trialDays: Int
    var graceDays: Int
    var sweepInterval: Duration
    var stripe: StripeSettings?
    var webhookSecret: String?
    var webhookTolerance: Int
    var publicURL: String

    init(_ r: ConfigReader) {
        trialPlan = r.string("VIGIL_BILLING_TRIAL_PLAN", default: "pro")
        trialDays = max(0, r.int("VIGIL_BILLING_TRIAL_DAYS", default: 14))
        graceDays = max(0, r.int("VIGIL_BILLING_GRACE_DAYS", default: 7))
        sweepInterval = .seconds(max(1, r.int("VIGIL_BILLING_SWEEP_SECONDS", default: 60)))
        publicURL = r.string("VIGIL_PUBLIC_URL", default: "http://127.0.0.1:8080")
        webhookSecret = r.optional("VIGIL_STRIPE_WEBHOOK_SECRET")
        webhookTolerance = max(1, r.int("VIGIL_STRIPE_WEBHOOK_TOLERANCE_SECONDS", default: 300))
        if let key = r.optional("VIGIL_STRIPE_SECRET_KEY") {
            var prices: [String: String] = [:]
            for plan in Plans.all {
                for p in plan.prices where p.amountCents > 0 {
                    if let id = r.optional("VIGIL_STRIPE_PRICE_\(plan.id.uppercased())_\(p.interval.uppercased())") {
                        prices["\(plan.id):\(p.interval)"] = id
                    }
                }
            }
            stripe = StripeSettings(secretKey: key, apiBase: r.string("VIGIL_STRIPE_API_BASE", default: "https://api.stripe.com"), prices: prices)
        }
    }
}

public enum BillingService {
    public static let definition = ServiceDefinition(
        name: "billing", description: "Plans, subscriptions, payments, usage and quotas", schema: "billing",
        migrations: BillingSchema.migrations
    ) { ctx in
        let settings = BillingSettings(ctx.config.reader)
        let store = ctx.store!
        let subs = Subscriptions(store: store, settings: settings)
        let stripe = settings.stripe.map { StripeClient(settings: $0) }
        SubscriptionHandlers(subs: subs, stripe: stripe).register(on: ctx.responder)
        QuotaHandlers(subs: subs).register(on: ctx.responder)
        WebhookHandler(subs: subs, stripe: stripe, logger: ctx.logger).register(on: ctx.responder)
        let meter = Meter(subs: subs, logger: ctx.logger)
        var services: [any Service] = []
        for (durable, subject) in [
            ("billing-meter-scans", Events.scanCompleted.subject), ("billing-meter-remediation", Events.all(of: "remediation")),
        ] {
            var cfg = JetStream.ConsumerConfig(durable: durable, filterSubject: subject)
            cfg.maxDeliver = 200
            let consumer = StreamConsumer(
                jetStream: ctx.jetStream, stream: Streams.events, config: cfg, batch: 8, logger: ctx.logger, handler: meter.handle)
            try await consumer.prepare()
            services.append(consumer)
        }
        let periods = PeriodSweeper(subs: subs, stripe: stripe, logger: ctx.logger)
        return services + [PeriodicService("billing sweep", every: settings.sweepInterval, logger: ctx.logger) { _ = try await periods.sweep() }]
    }
}
