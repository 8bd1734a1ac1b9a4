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
        migrations: [
            Migration(
                1, "subscriptions, usage, reservations",
                """
                CREATE TABLE {schema}.subscriptions (
                  tenant_id uuid PRIMARY KEY, plan text NOT NULL, interval text NOT NULL DEFAULT 'month', status text NOT NULL,
                  current_period_start timestamptz NOT NULL, current_period_end timestamptz NOT NULL,
                    cancel_at_period_end boolean NOT NULL DEFAULT false,
                  trial_end timestamptz, scheduled_plan text, past_due_since timestamptz, provider text NOT NULL DEFAULT 'manual',
                  provider_customer_id text, provider_subscription_id text, updated_by text,
                  created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
                CREATE UNIQUE INDEX ON {schema}.subscriptions (provider_customer_id) WHERE provider_customer_id IS NOT NULL;
                CREATE TABLE {schema}.usage (
                  tenant_id uuid NOT NULL, period_start timestamptz NOT NULL, quota text NOT NULL, used bigint NOT NULL DEFAULT 0,
                  reserved bigint NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, period_start, quota));
                CREATE TABLE {schema}.reservations (
                  id uuid PRIMARY KEY, tenant_id uuid NOT NULL, quota text NOT NULL, ref text NOT NULL, amount int NOT NULL,
                  period_start timestamptz NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), settled_at timestamptz,
                  UNIQUE (tenant_id, quota, ref));
                CREATE TABLE {schema}.gauges (
                  tenant_id uuid NOT NULL, quota text NOT NULL, in_use int NOT NULL, reported_at timestamptz NOT NULL DEFAULT now(),
                  PRIMARY KEY (tenant_id, quota));
                CREATE TABLE {schema}.processed_events (
                  id text PRIMARY KEY, tenant_id uuid, source text NOT NULL, type text NOT NULL, processed_at timestamptz NOT NULL DEFAULT now());
                CREATE TABLE {schema}.history (
                  id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT now(), change text NOT NULL,
                  from_plan text, to_plan text, from_status text, to_status text, actor text, note text);
                """ + ["subscriptions", "usage", "reservations", "gauges", "history"].map { Migration.tenantIsolation(table: $0) }.joined()),
            Migration(
                2, "when a scheduled change applies",
                """
                ALTER TABLE {schema}.subscriptions ADD COLUMN scheduled_at timestamptz;
                UPDATE {schema}.subscriptions SET scheduled_at = current_period_end WHERE scheduled_plan IS NOT NULL;
                """),
        ]
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
