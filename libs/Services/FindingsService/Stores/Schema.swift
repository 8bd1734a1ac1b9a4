import Contracts
import Store

/// The `findings` schema: findings and their event feed, applied result batches and per-rule counts,
/// completed scans, custom rules and overrides, suppression rules, remediation texts and reports. Its
/// statements live in the stores beside this file.
enum FindingsSchema {
    static let migrations: [Migration] = [
        Migration(
            1, "findings",
            """
            CREATE TABLE {schema}.findings (
              id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, fingerprint text NOT NULL,
              connection_id uuid NOT NULL, rule_id text NOT NULL, provider text NOT NULL, service text NOT NULL,
              resource_id text NOT NULL, resource_type text NOT NULL, resource_name text NOT NULL, region text NOT NULL,
              severity text NOT NULL, severity_rank int NOT NULL, title text NOT NULL, status text NOT NULL,
              status_reason text, status_actor text, status_expires_at timestamptz, suppression_rule_id uuid,
              evidence jsonb NOT NULL DEFAULT '{}', tags jsonb NOT NULL DEFAULT '{}', savings numeric,
              part_service text NOT NULL, part_region text NOT NULL, first_scan_id uuid NOT NULL, last_scan_id uuid NOT NULL,
              first_seen_at timestamptz NOT NULL DEFAULT now(), last_seen_at timestamptz NOT NULL DEFAULT now(),
              resolved_at timestamptz, created_at timestamptz NOT NULL DEFAULT clock_timestamp(), updated_at timestamptz NOT NULL DEFAULT now(),
              UNIQUE (tenant_id, fingerprint));
            CREATE INDEX ON {schema}.findings (tenant_id, created_at DESC, id DESC);
            CREATE INDEX ON {schema}.findings (tenant_id, status, severity_rank);
            CREATE INDEX ON {schema}.findings (tenant_id, connection_id, status);
            CREATE INDEX ON {schema}.findings (tenant_id, rule_id);
            CREATE TABLE {schema}.finding_events (
              id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, finding_id uuid NOT NULL,
              connection_id uuid NOT NULL, rule_id text NOT NULL, severity text NOT NULL, event_type text NOT NULL,
              from_status text, to_status text NOT NULL, actor text, reason text, scan_id uuid,
              created_at timestamptz NOT NULL DEFAULT clock_timestamp());
            CREATE INDEX ON {schema}.finding_events (tenant_id, created_at DESC, id DESC);
            CREATE INDEX ON {schema}.finding_events (tenant_id, finding_id);
            CREATE TABLE {schema}.ingested_events (event_id uuid PRIMARY KEY, tenant_id uuid NOT NULL, scan_id uuid NOT NULL,
              part_service text NOT NULL, part_region text NOT NULL, results int NOT NULL, at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.ingested_events (tenant_id, scan_id);
            CREATE TABLE {schema}.rule_counts (
              tenant_id uuid NOT NULL, scan_id uuid NOT NULL, event_id uuid NOT NULL, connection_id uuid NOT NULL, part_service text NOT NULL,
              part_region text NOT NULL, rule_id text NOT NULL, passed int NOT NULL DEFAULT 0, failed int NOT NULL DEFAULT 0,
              PRIMARY KEY (tenant_id, scan_id, event_id, rule_id));
            CREATE INDEX ON {schema}.rule_counts (tenant_id, scan_id, rule_id);
            CREATE TABLE {schema}.scans (
              tenant_id uuid NOT NULL, scan_id uuid NOT NULL, connection_id uuid NOT NULL, status text NOT NULL, complete boolean NOT NULL,
              resources int NOT NULL DEFAULT 0, checks int NOT NULL DEFAULT 0, completed_at timestamptz NOT NULL DEFAULT now(),
              parts jsonb NOT NULL DEFAULT '[]', PRIMARY KEY (tenant_id, scan_id));
            CREATE INDEX ON {schema}.scans (tenant_id, connection_id, completed_at DESC);
            CREATE TABLE {schema}.rules (
              tenant_id uuid NOT NULL, id text NOT NULL, definition jsonb NOT NULL, created_by text,
              created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, id));
            CREATE TABLE {schema}.rule_overrides (
              tenant_id uuid NOT NULL, rule_id text NOT NULL, enabled boolean, severity text, updated_by text,
              updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, rule_id));
            CREATE TABLE {schema}.suppression_rules (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL, connection_id uuid, rule_pattern text, rule_glob text,
              region text, resource_regex text, tags jsonb NOT NULL DEFAULT '{}', reason text NOT NULL, expires_at timestamptz,
              created_by text, created_at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.suppression_rules (tenant_id, created_at DESC, id DESC);
            CREATE TABLE {schema}.remediation_texts (
              tenant_id uuid NOT NULL, finding_id uuid NOT NULL, content jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
              PRIMARY KEY (tenant_id, finding_id));
            CREATE TABLE {schema}.reports (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, type text NOT NULL, format text NOT NULL, title text NOT NULL,
              parameters jsonb NOT NULL DEFAULT '{}', status text NOT NULL, content bytea, content_type text, size int,
              created_by text, created_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz, error text);
            CREATE INDEX ON {schema}.reports (tenant_id, created_at DESC, id DESC);
            """
                + [
                    "findings", "finding_events", "ingested_events", "rule_counts", "scans", "rules", "rule_overrides",
                    "suppression_rules", "remediation_texts", "reports",
                ].map { Migration.tenantIsolation(table: $0) }.joined()),
        Migration(
            2, "severity keyset index",
            """
            CREATE INDEX findings_severity_keyset ON {schema}.findings (tenant_id, severity_rank, id);
            """),
        // When a resolved finding last failed again (ingestion tells a reopen from an update by it);
        // free space on each page lets a re-scan's update stay on its page (HOT) and skip the indexes.
        Migration(
            3, "reopened_at, fillfactor, time-ordered ids",
            """
            ALTER TABLE {schema}.findings ADD COLUMN reopened_at timestamptz;
            ALTER TABLE {schema}.findings SET (fillfactor = 50);
            CREATE FUNCTION {schema}.uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
              SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
                substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
            $$;
            ALTER TABLE {schema}.findings ALTER COLUMN id SET DEFAULT {schema}.uuid7();
            ALTER TABLE {schema}.finding_events ALTER COLUMN id SET DEFAULT {schema}.uuid7();
            """),
    ]
}
