import AWS
import Bus
import Contracts
import Foundation
import Logging
import Net
import ScanEngine
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// Scan-orchestrator settings.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_SCAN_SEED | random per process (warns) | base64url 32-byte seed of the key that seals scan credentials |
/// | VIGIL_AWS_ENDPOINT_ALLOW_LOOPBACK / _PRIVATE | false | let `settings.endpoint_url` point at loopback / private addresses (moto, LocalStack) |
/// | VIGIL_AWS_PLATFORM_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _SESSION_TOKEN | unset | the platform's own AWS identity, used to assume roles of connections that give only `role_arn` |
struct ScanSettings: Sendable {
    var vault: CredentialVault
    var guardrail: SSRFGuard
    var platformCredentials: AWSCredentials?

    init(_ r: ConfigReader, logger: Logger) throws {
        let seed = try r.seed("VIGIL_SCAN_SEED")
        if seed.ephemeral { logger.warning("VIGIL_SCAN_SEED is not set: credentials sealed now cannot be opened after a restart") }
        vault = CredentialVault(seed: seed.bytes)
        guardrail = SSRFGuard(
            allowLoopback: r.bool("VIGIL_AWS_ENDPOINT_ALLOW_LOOPBACK", default: false),
            allowPrivate: r.bool("VIGIL_AWS_ENDPOINT_ALLOW_PRIVATE", default: false))
        if let k = r.optional("VIGIL_AWS_PLATFORM_ACCESS_KEY_ID"), let s = r.optional("VIGIL_AWS_PLATFORM_SECRET_ACCESS_KEY") {
            platformCredentials = AWSCredentials(accessKeyId: k, secretAccessKey: s, sessionToken: r.optional("VIGIL_AWS_PLATFORM_SESSION_TOKEN"))
        }
    }
}

struct ConnectionSettings: Codable, Sendable {
    var regions: [String]?
    var endpointUrl: String?
}
struct ConnectionRequest: Codable, Sendable {
    var connectionId: String?
    var name: String?
    var provider: String?
    var credentials: ConnectionCredentials?
    var settings: ConnectionSettings?
}
struct ConnectionView: Codable, Sendable {
    var id: String
    var name: String
    var provider: String
    var status: String
    var credentials: [String: String]
    var settings: ConnectionSettings
    var createdAt: Date
    var updatedAt: Date
    var lastScanAt: Date?
    var lastTestedAt: Date?
    var lastError: String?
}
struct ConnectionPath: Codable, Sendable { var connectionId: String }
struct ConnectionTestReply: Codable, Sendable {
    var ok: Bool
    var accountId: String?
    var arn: String?
    var message: String
}

struct ConnectionHandlers: Sendable {
    let store: Store
    let settings: ScanSettings
    /// Billing's connection quota (nil in tests that run without the bus).
    var bus: BusConnection? = nil

    func register(on r: ServiceResponder) {
        r.add(Endpoint<ConnectionRequest, ConnectionView>(Subjects.Scans.connectionCreate), handler: create)
        r.add(Endpoint<PageRequest, Page<ConnectionView>>(Subjects.Scans.connectionList), handler: list)
        r.add(Endpoint<ConnectionPath, ConnectionView>(Subjects.Scans.connectionGet), handler: get)
        r.add(Endpoint<ConnectionRequest, ConnectionView>(Subjects.Scans.connectionUpdate), handler: update)
        r.add(Endpoint<ConnectionPath, Empty>(Subjects.Scans.connectionDelete), handler: delete)
        r.add(Endpoint<ConnectionPath, ConnectionTestReply>(Subjects.Scans.connectionTest), handler: test)
    }

    static let regionPattern = "^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"

    static func matches(_ s: String, _ pattern: String) -> Bool {
        (try? Regex(pattern).wholeMatch(in: s)) != nil
    }

    func validate(_ s: ConnectionSettings?) async throws -> ConnectionSettings {
        var out = ConnectionSettings(regions: s?.regions ?? ["us-east-1"], endpointUrl: s?.endpointUrl)
        let regions = out.regions ?? []
        if regions.isEmpty || regions.count > 40 || regions.contains(where: { !Self.matches($0, Self.regionPattern) }) {
            throw ServiceError.validation("body.settings.regions", "must list 1 to 40 AWS region names like us-east-1")
        }
        out.regions = Array(Set(regions)).sorted()
        if let url = out.endpointUrl {
            let g = settings.guardrail
            do { _ = try await Blocking.run { try g.check(url) } } catch { throw ServiceError.validation("body.settings.endpoint_url", "\(error)") }
        }
        return out
    }

    static func view(_ r: Row) throws -> ConnectionView {
        ConnectionView(
            id: try r.string("id"), name: try r.string("name"), provider: try r.string("provider"), status: try r.string("status"),
            credentials: try r.json("credentials_masked"), settings: try r.json("settings"),
            createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"), lastScanAt: r.optionalDate("last_scan_at"),
            lastTestedAt: r.optionalDate("last_tested_at"), lastError: r.optionalString("last_error"))
    }

    @Sendable func create(_ req: ConnectionRequest, _ ctx: CallContext) async throws -> ConnectionView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let name = try Validate.text(req.name ?? "", path: "body.name", max: 100)
        guard let provider = req.provider else { throw ServiceError.validation("body.provider", "field required") }
        guard provider == "aws" else { throw ServiceError.validation("body.provider", "supported providers: aws") }
        guard let creds = req.credentials else { throw ServiceError.validation("body.credentials", "field required") }
        let masked = try creds.validated()
        let s = try await validate(req.settings)
        let id = ID.make()
        let sealed = try settings.vault.seal(creds, tenantId: p.tenantId, connectionId: id)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            if let bus {
                // One creation at a time per workspace, so the count the quota is checked against is exact.
                _ = try await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["connections:" + p.tenantId])
                let n = try await tx.one("SELECT count(*) AS n FROM scans.connections WHERE tenant_id = $1", [p.tenantId])!.int("n")
                try await Quotas.check(bus, tenantId: p.tenantId, quota: "connections", inUse: n)
            }
            let row = try await tx.one(
                """
                INSERT INTO scans.connections (id, tenant_id, name, provider, status, credentials_sealed, credentials_key_id, credentials_masked,
                  settings)
                VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7::jsonb, $8::jsonb) RETURNING *
                """, [id, p.tenantId, name, provider, sealed, settings.vault.keyId, try JSONParameter(masked), try JSONParameter(s)])!
            try await tx.emit(
                Events.connectionCreated, tenantId: p.tenantId,
                data: ["connection_id": id, "provider": provider, "actor": p.actorId])
            return try Self.view(row)
        }
    }

    @Sendable func list(_ req: PageRequest, _ ctx: CallContext) async throws -> Page<ConnectionView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        let page = try Pagination(req)
        return try await store.transaction(p.scope) { tx in
            try await page.list(tx, from: "scans.connections", filter: "tenant_id = $1", [p.tenantId], map: Self.view)
        }
    }

    @Sendable func get(_ req: ConnectionPath, _ ctx: CallContext) async throws -> ConnectionView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        let id = try Validate.id(req.connectionId, "connection")
        guard let row = try await store.query(p.scope, "SELECT * FROM scans.connections WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]).first
        else {
            throw ServiceError.notFound("connection")
        }
        return try Self.view(row)
    }

    @Sendable func update(_ req: ConnectionRequest, _ ctx: CallContext) async throws -> ConnectionView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.connectionId ?? "", "connection")
        let name = try req.name.map { try Validate.text($0, path: "body.name", max: 100) }
        let masked = try req.credentials.map { try $0.validated() }
        var s: ConnectionSettings? = nil
        if let given = req.settings { s = try await validate(given) }
        let sealed = try req.credentials.map { try settings.vault.seal($0, tenantId: p.tenantId, connectionId: id) }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let row = try await tx.one(
                    """
                    UPDATE scans.connections SET name = coalesce($3, name), credentials_sealed = coalesce($4, credentials_sealed),
                      credentials_key_id = CASE WHEN $4::bytea IS NULL THEN credentials_key_id ELSE $5 END,
                      credentials_masked = coalesce($6::jsonb, credentials_masked), settings = coalesce($7::jsonb, settings),
                      status = CASE WHEN $4::bytea IS NULL THEN status ELSE 'pending' END, updated_at = now()
                    WHERE id = $1 AND tenant_id = $2 RETURNING *
                    """,
                    [
                        id, p.tenantId, name, sealed, settings.vault.keyId, try masked.map { try JSONParameter($0) },
                        try s.map { try JSONParameter($0) },
                    ])
            else { throw ServiceError.notFound("connection") }
            try await tx.emit(
                Events.connectionUpdated, tenantId: p.tenantId,
                data: [
                    "connection_id": id, "credentials_changed": req.credentials != nil ? "true" : "false",
                    "actor": p.actorId,
                ])
            return try Self.view(row)
        }
    }

    @Sendable func delete(_ req: ConnectionPath, _ ctx: CallContext) async throws -> Empty {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.connectionId, "connection")
        defer {
            if let bus {
                Task {
                    let n =
                        (try? await store.query(p.scope, "SELECT count(*) AS n FROM scans.connections WHERE tenant_id = $1", [p.tenantId]).first?.int(
                            "n")) ?? 0
                    await Quotas.report(bus, tenantId: p.tenantId, quota: "connections", inUse: n)
                }
            }
        }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await tx.execute("DELETE FROM scans.connections WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]) == 1 else {
                throw ServiceError.notFound("connection")
            }
            // Running and queued scans of the connection stop; its inventory goes with it.
            try await ScanRows.cancelAll(tx, tenantId: p.tenantId, connectionId: id, reason: "the connection was deleted")
            _ = try await tx.execute("DELETE FROM scans.resources WHERE tenant_id = $1 AND connection_id = $2", [p.tenantId, id])
            try await tx.emit(
                Events.connectionDeleted, tenantId: p.tenantId,
                data: ["connection_id": id, "actor": p.actorId])
            return Empty()
        }
    }

    /// STS GetCallerIdentity with the stored credentials (through the endpoint override if any).
    @Sendable func test(_ req: ConnectionPath, _ ctx: CallContext) async throws -> ConnectionTestReply {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .analyst)
        let id = try Validate.id(req.connectionId, "connection")
        guard let row = try await store.query(p.scope, "SELECT * FROM scans.connections WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]).first
        else {
            throw ServiceError.notFound("connection")
        }
        let reply: ConnectionTestReply
        do {
            let session = try await self.session(row, tenantId: p.tenantId, connectionId: id)
            reply = ConnectionTestReply(ok: true, accountId: session.account, arn: session.arn, message: "credentials are valid")
        } catch let e as SessionError {
            reply = ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: e.message)
        }
        try await store.query(
            p.scope,
            """
            UPDATE scans.connections SET status = $3, last_tested_at = now(), last_error = $4 WHERE id = $1 AND tenant_id = $2
            """, [id, p.tenantId, reply.ok ? "active" : "error", reply.ok ? nil : reply.message])
        return reply
    }
}

extension ConnectionHandlers {
    /// Opens the connection's sealed credentials and starts an AWS session with them.
    func session(_ row: Row, tenantId: String, connectionId: String) async throws -> AWSSession {
        let creds = try settings.vault.open(try row.bytes("credentials_sealed"), tenantId: tenantId, connectionId: connectionId)
        let s: ConnectionSettings = try row.json("settings")
        let guardrail = settings.guardrail
        let platform = settings.platformCredentials
        return try await Blocking.run {
            try AWSSession.open(creds, endpointURL: s.endpointUrl, region: s.regions?.first ?? "us-east-1", guardrail: guardrail, platform: platform)
        }
    }
}
