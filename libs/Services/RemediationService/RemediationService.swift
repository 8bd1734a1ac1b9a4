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
        migrations: RemediationSchema.migrations
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
        guard let sealed = try await CredentialStore(db: store).sealed(tenantId: tenantId, connectionId: connectionId) else {
            throw ServiceError.missingCredentials(connectionId)
        }
        let creds = try settings.vault.open(sealed, tenantId: tenantId, connectionId: connectionId)
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
