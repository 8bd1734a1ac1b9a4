import Bus
import Contracts
import Foundation
import Logging
import ScanEngine
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

/// The findings service: ingests scan results from the bus, keeps each finding's lifecycle, serves
/// findings, finding events, rules (built-in + custom, per-workspace overrides), compliance and reports.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_FINDINGS_SWEEP_SECONDS | 30 | how often expired suppressions / risk acceptances return to `open` |
/// | VIGIL_FINDINGS_INGEST_CONCURRENCY | 8 | result batches ingested at once per replica |
///
/// Findings and finding events get time-ordered ids (UUID version 7: 48 bits of milliseconds, then
/// random): their primary-key indexes grow at the right edge instead of at a random page per row.
public enum FindingsService {
    public static let definition = ServiceDefinition(
        name: "findings", description: "Findings, rules, compliance and reports", schema: "findings",
        migrations: [
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
    ) { ctx in
        let store = ctx.store!
        let r = ctx.config.reader
        let catalog = RuleCatalog(store: store)
        let ingest = Ingestor(store: store, logger: ctx.logger)
        // Result batches are work on VIGIL_JOBS; scan completions (and batches of an earlier version)
        // are events.
        var resultsCfg = JetStream.ConsumerConfig(durable: "findings-results", filterSubject: Jobs.findingsResults)
        resultsCfg.maxDeliver = 200
        resultsCfg.ackWait = .seconds(60)
        let results = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.jobs, config: resultsCfg,
            batch: max(1, r.int("VIGIL_FINDINGS_INGEST_CONCURRENCY", default: 8)), logger: ctx.logger,
            handler: ingest.handle)
        try await results.prepare()
        var cfg = JetStream.ConsumerConfig(durable: "findings-ingest", filterSubject: Events.all(of: "scan"))
        cfg.maxDeliver = 200
        cfg.ackWait = .seconds(60)
        let consumer = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.events, config: cfg, batch: 4, logger: ctx.logger,
            handler: ingest.handle)
        try await consumer.prepare()
        var followCfg = JetStream.ConsumerConfig(durable: "findings-remediation", filterSubject: Events.all(of: "remediation"))
        followCfg.maxDeliver = 200
        let follower = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.events, config: followCfg, batch: 4, logger: ctx.logger,
            handler: RemediationFollower(store: store, logger: ctx.logger).handle)
        try await follower.prepare()
        FindingHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        RuleHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        ComplianceHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        ReportHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        SuppressionHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        let expiry = ExpirySweeper(store: store)
        let sweeper = PeriodicService(
            "expiry sweep", every: .seconds(max(1, r.int("VIGIL_FINDINGS_SWEEP_SECONDS", default: 30))),
            logger: ctx.logger
        ) { _ = try await expiry.sweep() }
        return [results, consumer, follower, sweeper]
    }
}
