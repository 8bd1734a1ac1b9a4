import Contracts
import Store

/// The `notifier` schema: audit log (append-only), email log, webhook endpoints and deliveries.
enum NotifierSchema {
    static let migrations: [Migration] = [
        Migration(
            1, "audit log, emails, webhooks",
            """
            CREATE TABLE {schema}.audit_log (
              id uuid PRIMARY KEY, tenant_id uuid, at timestamptz NOT NULL, actor text, action text NOT NULL,
              resource_type text NOT NULL, resource_id text, correlation_id text, ip text, user_agent text,
              changes jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.audit_log (tenant_id, created_at DESC, id DESC);
            CREATE OR REPLACE FUNCTION {schema}.audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
            CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON {schema}.audit_log
              FOR EACH ROW EXECUTE FUNCTION {schema}.audit_log_is_append_only();
            CREATE TABLE {schema}.emails (
              id uuid PRIMARY KEY, tenant_id uuid, to_address text NOT NULL, template text NOT NULL, status text NOT NULL,
              attempts integer NOT NULL DEFAULT 0, last_error text, sent_at timestamptz,
              created_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE {schema}.webhook_endpoints (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, url text NOT NULL, description text,
              events text[] NOT NULL, min_severity text, connection_ids text[], is_active boolean NOT NULL DEFAULT true,
              secret_sealed bytea NOT NULL, previous_secret_sealed bytea, previous_secret_expires_at timestamptz,
              consecutive_failures integer NOT NULL DEFAULT 0, disabled_reason text,
              created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE {schema}.webhook_deliveries (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, endpoint_id uuid NOT NULL REFERENCES {schema}.webhook_endpoints(id) ON DELETE CASCADE,
              event_id uuid NOT NULL, event_type text NOT NULL, payload text NOT NULL, status text NOT NULL DEFAULT 'pending',
              attempts integer NOT NULL DEFAULT 0, next_attempt_at timestamptz NOT NULL DEFAULT now(),
              last_status integer, last_error text, last_response text, last_latency_ms integer,
              created_at timestamptz NOT NULL DEFAULT now(), delivered_at timestamptz, UNIQUE (endpoint_id, event_id));
            CREATE INDEX webhook_deliveries_due ON {schema}.webhook_deliveries (next_attempt_at) WHERE status = 'pending';
            CREATE TABLE {schema}.webhook_attempts (
              id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, delivery_id uuid NOT NULL REFERENCES {schema}.webhook_deliveries(id) ON DELETE CASCADE,
              at timestamptz NOT NULL DEFAULT now(), status integer, latency_ms integer, error text, response_excerpt text);
            """ + Migration.tenantIsolation(table: "audit_log") + Migration.tenantIsolation(table: "webhook_endpoints")
                + Migration.tenantIsolation(table: "webhook_deliveries") + Migration.tenantIsolation(table: "webhook_attempts")),
        Migration(
            2, "contact messages",
            """
            CREATE TABLE {schema}.contact_messages (
              id uuid PRIMARY KEY, name text NOT NULL, email text NOT NULL, company text, subject text, message text NOT NULL,
              address text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.contact_messages (address, created_at);
            """),
        Migration(
            3, "notification channels and policy",
            """
            CREATE TABLE {schema}.channels (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL, method text NOT NULL, config jsonb NOT NULL,
              secret_sealed bytea NOT NULL, enabled boolean NOT NULL DEFAULT true, events text[] NOT NULL, min_severity text,
              created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE {schema}.channel_sends (
              tenant_id uuid NOT NULL, channel_id uuid NOT NULL REFERENCES {schema}.channels(id) ON DELETE CASCADE, event_id uuid NOT NULL,
              sent_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (channel_id, event_id));
            CREATE TABLE {schema}.policies (
              tenant_id uuid PRIMARY KEY, delivery text NOT NULL, trigger_mode text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
            """ + Migration.tenantIsolation(table: "channels") + Migration.tenantIsolation(table: "channel_sends")
                + Migration.tenantIsolation(table: "policies")),
        Migration(
            4, "webhook finding delivery: per finding or per batch",
            """
            ALTER TABLE {schema}.webhook_endpoints ADD COLUMN finding_delivery text NOT NULL DEFAULT 'per_finding'
              CHECK (finding_delivery IN ('per_finding', 'batch'));
            """),
    ]
}
