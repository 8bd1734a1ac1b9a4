import Contracts
import Foundation
import ServiceLifecycle
import ServiceRuntime
import Store

/// The scan orchestrator: connections, scans (API role) and the scan workers (worker role).
public enum ScanService {
    public static let definition = ServiceDefinition(
        name: "scan-orchestrator", description: "Connections, scans, schedules and connectors", schema: "scans",
        migrations: [
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
        ]
    ) { ctx in
        let r = ctx.config.reader
        let settings = try ScanSettings(r, logger: ctx.logger)
        let store = ctx.store!
        let connections = ConnectionHandlers(store: store, settings: settings, bus: ctx.bus)
        // Roles (DESIGN.md §2): "api" serves the REST subjects, "worker" runs scan jobs; default both.
        let roles = Set(r.string("VIGIL_SCAN_ROLES", default: "api,worker").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        if roles.contains("api") {
            connections.register(on: ctx.responder)
            ScanHandlers(store: store, bus: ctx.bus).register(on: ctx.responder)
            InstructionHandlers(publicURL: r.string("VIGIL_PUBLIC_URL", default: "http://127.0.0.1:8080")).register(on: ctx.responder)
        }
        var services: [any Service] = []
        if roles.contains("worker") {
            let ws = WorkerSettings(r)
            let worker = ScanWorker(store: store, connections: connections, settings: ws, logger: ctx.logger, bus: ctx.bus)
            let consumer = StreamConsumer(
                jetStream: ctx.jetStream, stream: Streams.jobs, config: worker.consumerConfig(),
                batch: ws.workerConcurrency, logger: ctx.logger, handler: worker.handle)
            try await consumer.prepare()
            services.append(consumer)
        }
        return services
    }
}
