import AWS
import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct RemediationCredentialsRequest: Codable, Sendable {
    var connectionId: String
    /// The credentials, nested or (FixMyCloud style) as top-level fields.
    var credentials: ConnectionCredentials?
    var accessKeyId: String?
    var secretAccessKey: String?
    var sessionToken: String?
    var roleArn: String?
    var externalId: String?

    var given: ConnectionCredentials {
        credentials
            ?? ConnectionCredentials(
                accessKeyId: accessKeyId, secretAccessKey: secretAccessKey, sessionToken: sessionToken,
                roleArn: roleArn, externalId: externalId)
    }
}

struct RemediationCredentialsView: Codable, Sendable {
    var connectionId: String
    var credentials: [String: String]
    var accountId: String?
    var arn: String?
    var verified: Bool
    var autoFix: Bool
    var createdAt: Date?
    var message: String
}

/// `POST/DELETE /connections/{id}/remediation-credentials`: write credentials, tested with STS, sealed
/// to the remediation key and never shown again.
struct CredentialHandlers: Sendable {
    let store: Store
    let bus: BusConnection
    let aws: AWSAccess

    func register(on r: ServiceResponder) {
        r.add(Endpoint<RemediationCredentialsRequest, RemediationCredentialsView>(Subjects.Remediation.credentialsSet), handler: set)
        r.add(Endpoint<ConnectionRef, RemediationCredentialsView>(Subjects.Remediation.credentialsDelete), handler: delete)
    }

    /// The connection as the caller sees it (404 when it is not theirs).
    static func connection(_ bus: BusConnection, _ id: String, _ ctx: CallContext) async throws -> ConnectionInfo {
        try await bus.request(
            Endpoint<ConnectionRef, ConnectionInfo>(Subjects.Scans.connectionGet), ConnectionRef(connectionId: id),
            context: ctx, timeout: .seconds(10))
    }

    @Sendable func set(_ req: RemediationCredentialsRequest, _ p: Principal, _ ctx: CallContext) async throws -> RemediationCredentialsView {
        let cid = try Validate.id(req.connectionId, "connection").lowercased()
        let creds = req.given
        let masked = try creds.validated(path: req.credentials == nil ? "body" : "body.credentials")
        let conn = try await Self.connection(bus, cid, ctx)
        let settings = aws.settings
        let session: AWSSession
        do {
            session = try await AWSSession.open(
                creds, endpointURL: conn.settings.endpointUrl, region: conn.settings.regions?.first ?? "us-east-1",
                guardrail: settings.guardrail, platform: settings.platformCredentials)
        } catch let e as SessionError {
            throw ServiceError(status: 422, error: "credentials_rejected", message: "the remediation credentials were not accepted: \(e.message)")
        }
        let sealed = try settings.vault.seal(creds, tenantId: p.tenantId, connectionId: cid)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let createdAt = try await CredentialStore.upsert(
                tx, tenantId: p.tenantId,
                .init(
                    connectionId: cid, sealed: sealed, keyId: settings.vault.keyId, masked: masked, accountId: session.account, arn: session.arn,
                    createdBy: p.actorId))
            try await tx.emit(
                Events.remediationCredentialsSet, tenantId: p.tenantId,
                data: ["connection_id": cid, "account_id": session.account, "actor": p.actorId])
            return RemediationCredentialsView(
                connectionId: cid, credentials: masked, accountId: session.account, arn: session.arn, verified: true,
                autoFix: true, createdAt: createdAt,
                message: "remediation credentials verified with STS and stored sealed; they are not shown again")
        }
    }

    @Sendable func delete(_ req: ConnectionRef, _ p: Principal, _ ctx: CallContext) async throws -> RemediationCredentialsView {
        let cid = try Validate.id(req.connectionId, "connection").lowercased()
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await CredentialStore.delete(tx, tenantId: p.tenantId, connectionId: cid) else {
                throw ServiceError(status: 404, error: "not_found", message: "connection \(cid) has no remediation credentials")
            }
            try await tx.emit(
                Events.remediationCredentialsRemoved, tenantId: p.tenantId,
                data: ["connection_id": cid, "actor": p.actorId])
            return RemediationCredentialsView(
                connectionId: cid, credentials: [:], accountId: nil, arn: nil, verified: false, autoFix: false,
                createdAt: nil, message: "remediation credentials removed: automatic fixes are off for this connection")
        }
    }
}
