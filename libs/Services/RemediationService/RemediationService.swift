import AWS
import Bus
import Contracts
import Foundation
import Logging
import Net
import ScanEngine
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// Remediation settings.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_REMEDIATION_SEED | random per process (warns) | base64url 32-byte seed of the key remediation credentials are sealed to |
/// | VIGIL_AWS_ENDPOINT_ALLOW_LOOPBACK / _PRIVATE | false | let connections' endpoint overrides point at loopback / private addresses |
/// | VIGIL_AWS_PLATFORM_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _SESSION_TOKEN | unset | platform identity for role-only remediation credentials |
/// | VIGIL_REMEDIATION_ACK_WAIT_SECONDS | 30 | a silent executor's job is redelivered after this |
/// | VIGIL_REMEDIATION_MAX_ATTEMPTS | 3 | executions (or rollbacks) that fail or die this often end `failed` |
/// | VIGIL_REMEDIATION_SWEEP_SECONDS | 30 | how often pending approvals past their expiry become `expired` |
/// | VIGIL_REMEDIATION_STEP_DELAY_MS | 0 | pause after each recorded step (tests use it to kill an executor mid-apply) |
struct RemediationSettings: Sendable {
    var vault: CredentialVault
    var guardrail: SSRFGuard
    var platformCredentials: AWSCredentials?
    var ackWait: Duration
    var maxAttempts: Int
    var sweepInterval: Duration
    var stepDelay: Duration

    init(_ r: ConfigReader, logger: Logger) throws {
        let seed = try r.seed("VIGIL_REMEDIATION_SEED")
        if seed.ephemeral { logger.warning("VIGIL_REMEDIATION_SEED is not set: remediation credentials sealed now cannot be opened after a restart") }
        vault = CredentialVault(seed: seed.bytes)
        guardrail = SSRFGuard(
            allowLoopback: r.bool("VIGIL_AWS_ENDPOINT_ALLOW_LOOPBACK", default: false),
            allowPrivate: r.bool("VIGIL_AWS_ENDPOINT_ALLOW_PRIVATE", default: false))
        if let k = r.optional("VIGIL_AWS_PLATFORM_ACCESS_KEY_ID"), let s = r.optional("VIGIL_AWS_PLATFORM_SECRET_ACCESS_KEY") {
            platformCredentials = AWSCredentials(accessKeyId: k, secretAccessKey: s, sessionToken: r.optional("VIGIL_AWS_PLATFORM_SESSION_TOKEN"))
        }
        ackWait = .seconds(max(3, r.int("VIGIL_REMEDIATION_ACK_WAIT_SECONDS", default: 30)))
        maxAttempts = max(1, r.int("VIGIL_REMEDIATION_MAX_ATTEMPTS", default: 3))
        sweepInterval = .seconds(max(1, r.int("VIGIL_REMEDIATION_SWEEP_SECONDS", default: 30)))
        stepDelay = .milliseconds(max(0, r.int("VIGIL_REMEDIATION_STEP_DELAY_MS", default: 0)))
    }
}

public enum RemediationService {
    public static let definition = ServiceDefinition(
        name: "remediation", description: "Remediation credentials, policies, approvals, fixes and rollback", schema: "remediation",
        migrations: [
            Migration(
                1, "remediation policies",
                """
                CREATE TABLE {schema}.policies (
                  tenant_id uuid PRIMARY KEY, mode text NOT NULL DEFAULT 'manual',
                  auto_approve_severities text[] NOT NULL DEFAULT '{}', require_verification boolean NOT NULL DEFAULT true,
                  allowed_actions text[], max_actions_per_day integer NOT NULL DEFAULT 50,
                  updated_by text, updated_at timestamptz NOT NULL DEFAULT now());
                """ + Migration.tenantIsolation(table: "policies")),
            Migration(
                2, "policy modes, credentials, actions",
                """
                ALTER TABLE {schema}.policies ADD COLUMN auto_max_severity text, ADD COLUMN require_approval_from_roles text[] NOT NULL DEFAULT '{owner,admin}',
                  ADD COLUMN dry_run_default boolean NOT NULL DEFAULT false, ADD COLUMN allow_self_approval boolean NOT NULL DEFAULT false,
                  ADD COLUMN approval_ttl_hours integer NOT NULL DEFAULT 72;
                UPDATE {schema}.policies SET mode = 'auto' WHERE mode = 'auto_approve';
                ALTER TABLE {schema}.policies DROP COLUMN auto_approve_severities, DROP COLUMN require_verification;
                CREATE TABLE {schema}.credentials (
                  tenant_id uuid NOT NULL, connection_id uuid NOT NULL, sealed bytea NOT NULL, key_id text NOT NULL, masked jsonb NOT NULL,
                  account_id text, arn text, created_by text, created_at timestamptz NOT NULL DEFAULT now(),
                  PRIMARY KEY (tenant_id, connection_id));
                CREATE TABLE {schema}.actions (
                  id uuid PRIMARY KEY, tenant_id uuid NOT NULL, finding_id uuid NOT NULL, connection_id uuid NOT NULL, rule_code text NOT NULL,
                  action text NOT NULL, title text NOT NULL, severity text NOT NULL, resource_id text NOT NULL, resource_type text NOT NULL,
                  resource_name text NOT NULL, region text NOT NULL, api_region text NOT NULL, endpoint_url text, account_id text,
                  status text NOT NULL, dry_run boolean NOT NULL DEFAULT false, parameters jsonb NOT NULL DEFAULT '{}', plan jsonb NOT NULL,
                  requested_by text NOT NULL, requested_role text NOT NULL, approved_by text, approved_at timestamptz,
                  decided_by text, decision_reason text, before_state jsonb, after_state jsonb, calls jsonb, outputs jsonb NOT NULL DEFAULT '{}',
                  steps_done int NOT NULL DEFAULT 0, verification jsonb, rollback_calls jsonb, rollback_steps_done int NOT NULL DEFAULT 0, rollback_outputs jsonb NOT NULL DEFAULT '{}',
                  rollback_verification jsonb, rollback_resource_id text, rollback_requested_by text, error text, attempts int NOT NULL DEFAULT 0,
                  expires_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
                  applied_at timestamptz, rolled_back_at timestamptz);
                CREATE INDEX ON {schema}.actions (tenant_id, created_at DESC, id DESC);
                CREATE INDEX ON {schema}.actions (tenant_id, status, created_at DESC, id DESC);
                CREATE INDEX ON {schema}.actions (status, expires_at) WHERE status = 'pending_approval';
                CREATE UNIQUE INDEX actions_one_in_flight ON {schema}.actions (tenant_id, finding_id)
                  WHERE status IN ('pending_approval', 'approved', 'executing', 'rolling_back');
                CREATE TABLE {schema}.action_history (
                  id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, action_id uuid NOT NULL, at timestamptz NOT NULL DEFAULT now(),
                  from_status text, to_status text NOT NULL, actor text, note text);
                CREATE INDEX ON {schema}.action_history (action_id, id);
                """ + Migration.tenantIsolation(table: "credentials") + Migration.tenantIsolation(table: "actions")
                    + Migration.tenantIsolation(table: "action_history")),
        ]
    ) { ctx in
        let settings = try RemediationSettings(ctx.config.reader, logger: ctx.logger)
        let store = ctx.store!
        let aws = AWSAccess(store: store, settings: settings)
        PolicyHandlers(store: store).register(on: ctx.responder)
        CredentialHandlers(store: store, bus: ctx.bus, aws: aws).register(on: ctx.responder)
        RequestHandlers(store: store, bus: ctx.bus, aws: aws).register(on: ctx.responder)
        let executor = Executor(store: store, aws: aws, settings: settings, logger: ctx.logger)
        let consumer = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.jobs, config: executor.consumerConfig(),
            batch: 4, logger: ctx.logger, handler: executor.handle)
        try await consumer.prepare()
        let expiry = ApprovalExpiry(store: store)
        return [
            consumer, PeriodicService("approval expiry sweep", every: settings.sweepInterval, logger: ctx.logger) { _ = try await expiry.sweep() },
        ]
    }
}

/// Opens AWS sessions with a connection's remediation (write) credentials.
struct AWSAccess: Sendable {
    let store: Store
    let settings: RemediationSettings

    func session(tenantId: String, connectionId: String, endpointURL: String?, region: String) async throws -> AWSSession {
        guard
            let row = try await store.query(
                .tenant(tenantId), "SELECT sealed FROM remediation.credentials WHERE tenant_id = $1 AND connection_id = $2",
                [tenantId, connectionId]
            ).first
        else {
            throw ServiceError.missingCredentials(connectionId)
        }
        let creds = try settings.vault.open(try row.bytes("sealed"), tenantId: tenantId, connectionId: connectionId)
        return try await AWSSession.open(
            creds, endpointURL: endpointURL, region: region, guardrail: settings.guardrail, platform: settings.platformCredentials)
    }
}

extension ServiceError {
    static func missingCredentials(_ connectionId: String) -> ServiceError {
        ServiceError(
            status: 409, error: "remediation_credentials_missing",
            message:
                "connection \(connectionId) has no remediation credentials, so nothing can be fixed automatically; "
                + "add write credentials with POST /api/v1/connections/\(connectionId)/remediation-credentials"
        )
    }
}

/// What remediation needs to know about a connection (from the scan orchestrator, as the caller).
struct ConnectionInfo: Codable, Sendable {
    struct Settings: Codable, Sendable {
        var regions: [String]?
        var endpointUrl: String?
    }
    var id: String
    var settings: Settings
}
struct ConnectionRef: Codable, Sendable { var connectionId: String }

/// What remediation needs to know about a finding (from the findings service, as the caller).
struct FindingInfo: Codable, Sendable {
    var id: String
    var ruleCode: String
    var title: String
    var severity: String
    var status: String
    var service: String
    var resourceId: String
    var resourceType: String
    var resourceName: String
    var region: String
    var connectionId: String
}
struct FindingRef: Codable, Sendable { var findingId: String }

/// `vigil.jobs.remediation.execute` / `.rollback`.
struct RemediationJob: Codable, Sendable {
    var actionId: String
    var tenantId: String
    var op: String
}
struct JobEnvelope<T: Codable & Sendable>: Codable, Sendable {
    var id: String
    var data: T
}
