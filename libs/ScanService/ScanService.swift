import Contracts
import Foundation
import ServiceRuntime
import Store

/// The scan orchestrator: connections today; scans, schedules and connectors come next (issue 3).
public enum ScanService {
    public static let definition = ServiceDefinition(
        name: "scan-orchestrator", description: "Connections, scans, schedules and connectors", schema: "scans",
        migrations: [
            Migration(1, "connections", """
            CREATE TABLE {schema}.connections (
              id uuid PRIMARY KEY, tenant_id uuid NOT NULL, name text NOT NULL, provider text NOT NULL, status text NOT NULL,
              credentials_sealed bytea NOT NULL, credentials_key_id text NOT NULL, credentials_masked jsonb NOT NULL,
              settings jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
              last_scan_at timestamptz, last_tested_at timestamptz, last_error text);
            CREATE INDEX ON {schema}.connections (tenant_id, created_at DESC, id DESC);
            """ + Migration.tenantIsolation(table: "connections")),
        ]
    ) { ctx in
        let settings = try ScanSettings(ctx.config.reader, logger: ctx.logger)
        ConnectionHandlers(store: ctx.store!, settings: settings).register(on: ctx.responder)
        InstructionHandlers(publicURL: ctx.config.reader.string("VIGIL_PUBLIC_URL", default: "http://127.0.0.1:8080"))
            .register(on: ctx.responder)
        return []
    }
}
