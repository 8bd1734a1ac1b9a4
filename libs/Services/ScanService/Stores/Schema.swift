import Contracts
import Store

/// The `scans` schema: connections, scans with their parts and results, and the inventory. Its
/// statements live in the stores beside this file (ConnectionStore, ScanStore, InventoryStore).
enum ScanSchema {
    static let migrations: [Migration] = [

        Migration(
            1, "connections",
            """
            CREATE TABLE {schema}.connections (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL, provider text NOT NULL, status text NOT NULL,
              credentials_sealed bytea NOT NULL, credentials_key_id text NOT NULL, credentials_masked jsonb NOT NULL,
              settings jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
              last_scan_at timestamptz, last_tested_at timestamptz, last_error text);
            CREATE INDEX ON {schema}.connections (tenant_id, created_at DESC, id DESC);
            """ + Migration.tenantIsolation(table: "connections")),
        Migration(
            2, "scans",
            """
            CREATE TABLE {schema}.scans (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, connection_id uuid NOT NULL, status text NOT NULL,
              regions text[] NOT NULL, services text[] NOT NULL, requested_by text, account_id text,
              created_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz, completed_at timestamptz, heartbeat_at timestamptz,
              attempts int NOT NULL DEFAULT 0, complete boolean NOT NULL DEFAULT false,
              resources_scanned int NOT NULL DEFAULT 0, checks_evaluated int NOT NULL DEFAULT 0,
              critical_count int NOT NULL DEFAULT 0, high_count int NOT NULL DEFAULT 0, medium_count int NOT NULL DEFAULT 0,
              low_count int NOT NULL DEFAULT 0, info_count int NOT NULL DEFAULT 0, savings numeric NOT NULL DEFAULT 0, error text);
            CREATE INDEX ON {schema}.scans (tenant_id, created_at DESC, id DESC);
            CREATE INDEX ON {schema}.scans (tenant_id, status);
            CREATE INDEX ON {schema}.scans (connection_id, status);
            CREATE TABLE {schema}.scan_parts (
              scan_id uuid NOT NULL, tenant_id uuid NOT NULL, service text NOT NULL, region text NOT NULL, status text NOT NULL,
              resources int NOT NULL DEFAULT 0, checks int NOT NULL DEFAULT 0, failures int NOT NULL DEFAULT 0, error text,
              started_at timestamptz, completed_at timestamptz, PRIMARY KEY (scan_id, service, region));
            CREATE TABLE {schema}.scan_results (
              id uuid NOT NULL DEFAULT gen_random_uuid(), scan_id uuid NOT NULL, tenant_id uuid NOT NULL, fingerprint text NOT NULL,
              rule_id text NOT NULL, status text NOT NULL, severity text NOT NULL, title text NOT NULL, resource_id text NOT NULL,
              resource_type text NOT NULL, resource_name text NOT NULL, region text NOT NULL, service text NOT NULL,
              evidence jsonb NOT NULL DEFAULT '{}', savings numeric, created_at timestamptz NOT NULL DEFAULT now(),
              PRIMARY KEY (scan_id, fingerprint));
            CREATE INDEX ON {schema}.scan_results (tenant_id, scan_id, created_at DESC, id DESC);
            CREATE TABLE {schema}.resources (
              tenant_id uuid NOT NULL, connection_id uuid NOT NULL, resource_id text NOT NULL, type text NOT NULL, service text NOT NULL,
              region text NOT NULL, name text NOT NULL, tags jsonb NOT NULL DEFAULT '{}', attributes jsonb NOT NULL, last_scan_id uuid,
              updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, connection_id, resource_id));
            """ + Migration.tenantIsolation(table: "scans") + Migration.tenantIsolation(table: "scan_parts")
                + Migration.tenantIsolation(table: "scan_results") + Migration.tenantIsolation(table: "resources")),
        Migration(
            3, "scan api call counts",
            """
            ALTER TABLE {schema}.scans ADD COLUMN api_calls int NOT NULL DEFAULT 0, ADD COLUMN api_retries int NOT NULL DEFAULT 0;
            """),
        Migration(
            4, "schedules and their runs",
            """
            CREATE TABLE {schema}.schedules (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, connection_id uuid NOT NULL REFERENCES {schema}.connections (id) ON DELETE CASCADE,
              name text NOT NULL, cron text, interval_minutes int, timezone text NOT NULL DEFAULT 'UTC', enabled boolean NOT NULL DEFAULT true,
              regions text[], services text[], next_run_at timestamptz, last_run_at timestamptz, created_by text,
              created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
              CHECK ((cron IS NULL) <> (interval_minutes IS NULL)));
            CREATE INDEX ON {schema}.schedules (tenant_id, created_at DESC, id DESC);
            CREATE INDEX ON {schema}.schedules (next_run_at) WHERE enabled;
            CREATE TABLE {schema}.schedule_runs (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, schedule_id uuid NOT NULL REFERENCES {schema}.schedules (id) ON DELETE CASCADE,
              planned_at timestamptz NOT NULL, trigger text NOT NULL, outcome text NOT NULL, reason text, scan_id uuid,
              started_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (schedule_id, planned_at));
            CREATE INDEX ON {schema}.schedule_runs (tenant_id, schedule_id, created_at DESC, id DESC);
            CREATE INDEX ON {schema}.schedule_runs (created_at) WHERE outcome = 'pending';
            """ + Migration.tenantIsolation(table: "schedules") + Migration.tenantIsolation(table: "schedule_runs")),
        Migration(
            5, "connector enrollments, connectors and their jobs",
            """
            CREATE TABLE {schema}.connector_enrollments (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL, token_hash text NOT NULL UNIQUE, token_prefix text NOT NULL,
              max_uses int, uses int NOT NULL DEFAULT 0, expires_at timestamptz NOT NULL, revoked_at timestamptz, created_by text,
              created_at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.connector_enrollments (tenant_id, created_at DESC, id DESC);
            CREATE TABLE {schema}.connectors (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, enrollment_id uuid, name text NOT NULL, hostname text NOT NULL,
              version text NOT NULL, connector_type text NOT NULL DEFAULT 'linux', secret_sealed bytea NOT NULL,
              facts jsonb NOT NULL DEFAULT '{}', load jsonb, last_heartbeat_at timestamptz, revoked_at timestamptz,
              created_at timestamptz NOT NULL DEFAULT now());
            CREATE INDEX ON {schema}.connectors (tenant_id, created_at DESC, id DESC);
            CREATE TABLE {schema}.connector_nonces (
              connector_id uuid NOT NULL, nonce text NOT NULL, seen_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (connector_id, nonce));
            CREATE INDEX ON {schema}.connector_nonces (seen_at);
            CREATE TABLE {schema}.connector_jobs (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, connector_id uuid NOT NULL REFERENCES {schema}.connectors (id) ON DELETE CASCADE,
              scan_id uuid, kind text NOT NULL, parameters jsonb NOT NULL DEFAULT '{}', status text NOT NULL, error text, result jsonb,
              chunk_count int, sha256 text, created_at timestamptz NOT NULL DEFAULT now(), dispatched_at timestamptz,
              completed_at timestamptz);
            CREATE INDEX ON {schema}.connector_jobs (connector_id, status, created_at);
            CREATE INDEX ON {schema}.connector_jobs (scan_id);
            CREATE TABLE {schema}.connector_job_chunks (
              job_id uuid NOT NULL REFERENCES {schema}.connector_jobs (id) ON DELETE CASCADE, tenant_id uuid NOT NULL, idx int NOT NULL,
              data text NOT NULL, PRIMARY KEY (job_id, idx));
            """ + Migration.tenantIsolation(table: "connector_enrollments") + Migration.tenantIsolation(table: "connectors")
                + Migration.tenantIsolation(table: "connector_jobs") + Migration.tenantIsolation(table: "connector_job_chunks")),
        Migration(
            6, "scan policies",
            """
            CREATE TABLE {schema}.scan_policies (
              tenant_id uuid PRIMARY KEY, policy jsonb NOT NULL, updated_by text, updated_at timestamptz NOT NULL DEFAULT now());
            """ + Migration.tenantIsolation(table: "scan_policies")),
        Migration(
            7, "outbound proxy profiles",
            """
            CREATE TABLE {schema}.proxies (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL, url text NOT NULL, username text,
              password_sealed bytea, password_key_id text, created_by text, created_at timestamptz NOT NULL DEFAULT now(),
              updated_at timestamptz NOT NULL DEFAULT now(), last_tested_at timestamptz, last_test_ok boolean, last_error text,
              UNIQUE (tenant_id, name));
            CREATE INDEX ON {schema}.proxies (tenant_id, created_at DESC, id DESC);
            """ + Migration.tenantIsolation(table: "proxies")),
        Migration(
            8, "web scan modes and verified domains",
            """
            ALTER TABLE {schema}.scans ADD COLUMN mode text NOT NULL DEFAULT 'passive';
            CREATE TABLE {schema}.domains (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, domain text NOT NULL, token text NOT NULL, status text NOT NULL DEFAULT 'pending',
              method text, verified_at timestamptz, last_checked_at timestamptz, last_error text, created_by text,
              created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (tenant_id, domain));
            CREATE INDEX ON {schema}.domains (tenant_id, created_at DESC, id DESC);
            """ + Migration.tenantIsolation(table: "domains")),
        Migration(
            9, "when the findings service finished a scan's findings",
            """
            ALTER TABLE {schema}.scans ADD COLUMN findings_ingested_at timestamptz;
            """),
        Migration(
            10, "repository fixes, live progress of a running part",
            """
            CREATE TABLE {schema}.repo_fixes (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, connection_id uuid NOT NULL, finding_ids text[] NOT NULL, title text NOT NULL,
              instructions text NOT NULL, options jsonb NOT NULL DEFAULT '{}', targets jsonb NOT NULL, source_repo text, source_scan_branch text,
              status text NOT NULL, attempts int NOT NULL DEFAULT 0, run_id uuid, phase text, steps int NOT NULL DEFAULT 0, base_commit text,
              files_changed text[] NOT NULL DEFAULT '{}', outcomes jsonb NOT NULL DEFAULT '[]', diff_redacted text, patch_sealed bytea,
              error text, pull_requests jsonb NOT NULL DEFAULT '[]', created_by text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
              started_at timestamptz, completed_at timestamptz, last_activity_at timestamptz);
            CREATE INDEX ON {schema}.repo_fixes (tenant_id, connection_id, created_at DESC, id DESC);
            ALTER TABLE {schema}.scan_parts ADD COLUMN live jsonb;
            """ + Migration.tenantIsolation(table: "repo_fixes")),
    ]
}
