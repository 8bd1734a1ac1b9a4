import Contracts
import Store

/// The `billing` schema: subscriptions and their history, usage per period, reservations, gauges and the
/// events already applied. Its statements live in the stores beside this file.
enum BillingSchema {
    static let migrations: [Migration] = [
        Migration(
            1, "subscriptions, usage, reservations",
            """
            CREATE TABLE {schema}.subscriptions (
              tenant_id uuid PRIMARY KEY, plan text NOT NULL, interval text NOT NULL DEFAULT 'month', status text NOT NULL,
              current_period_start timestamptz NOT NULL, current_period_end timestamptz NOT NULL, cancel_at_period_end boolean NOT NULL DEFAULT false,
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
}
