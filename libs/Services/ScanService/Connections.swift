import AWS
import Bus
import Contracts
import Foundation
import Host
import Logging
import Net
import Repo
import ScanEngine
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto
import Web

/// Scan-orchestrator settings.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_SCAN_SEED | random per process (warns) | base64url 32-byte seed of the key that seals scan credentials |
/// | VIGIL_AWS_ENDPOINT_ALLOW_LOOPBACK / _PRIVATE | false | let `settings.endpoint_url` point at loopback / private addresses (moto, LocalStack) |
/// | VIGIL_AWS_PLATFORM_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _SESSION_TOKEN | unset | the platform's own AWS identity |
///   (used to assume the roles of connections that give only `role_arn`)
/// | VIGIL_SSH_ALLOW_LOOPBACK / _PRIVATE | false | let agentless Linux connections reach loopback / private addresses |
/// | VIGIL_WEB_ALLOW_LOOPBACK / _PRIVATE | false | let web targets (and their redirects) reach loopback / private addresses |
/// | VIGIL_PROXY_ALLOW_LOOPBACK / _PRIVATE | false | let proxy profiles point at loopback / private addresses (an on-premises egress proxy) |
/// | VIGIL_REPO_ALLOW_LOCAL | false | let repositories be cloned from file://, http:// and loopback/private hosts (`make run` sets it) |
/// | VIGIL_REPO_MIRRORS | $TMPDIR/vigil-repos | where workers keep a bare mirror of each repository |
/// | VIGIL_REPO_SCAN_SECONDS | 300 | time limit of one repository scan (fetch, history, files) |
/// | VIGIL_REPO_MAX_FILE_BYTES | 5242880 | larger files are skipped (and counted) |
/// | VIGIL_SEMGREP | semgrep | the Semgrep executable (a path, or a name looked up on PATH); without it `semgrep_scan` is unavailable |
/// | VIGIL_FORGE_HOSTS | (none) | more forges than github.com and gitlab.com: `host[:port]=github|gitlab@<api url>,…` |
/// | VIGIL_GITHUB_API_URL / VIGIL_GITLAB_API_URL | api.github.com / gitlab.com/api/v4 | where pull requests are opened |
/// | VIGIL_OSV_DIR | (none) | an OSV database export (`*.json` advisories) the `sbom_scan` matches components against; never downloaded |
struct ScanSettings: Sendable {
    var vault: CredentialVault
    var guardrail: SSRFGuard
    var sshGuardrail: SSRFGuard
    var proxyGuardrail: SSRFGuard
    var webGuardrail: SSRFGuard
    var platformCredentials: AWSCredentials?
    var repoPolicy: RepoURLPolicy
    var repoMirrors: String
    var repoLimits: RepoLimits
    var osv: OSVDatabase?
    var semgrep: Semgrep?
    var forges: ForgeSettings
    /// `secrets` and `sbom` everywhere, `semgrep` where it is installed.
    var repoScanTypes: [String] { ["secrets", "sbom"] + (semgrep == nil ? [] : ["semgrep"]) }

    init(_ r: ConfigReader, logger: Logger) throws {
        let seed = try r.seed("VIGIL_SCAN_SEED")
        if seed.ephemeral { logger.warning("VIGIL_SCAN_SEED is not set: credentials sealed now cannot be opened after a restart") }
        vault = CredentialVault(seed: seed.bytes)
        guardrail = SSRFGuard(
            allowLoopback: r.bool("VIGIL_AWS_ENDPOINT_ALLOW_LOOPBACK", default: false),
            allowPrivate: r.bool("VIGIL_AWS_ENDPOINT_ALLOW_PRIVATE", default: false))
        sshGuardrail = SSRFGuard(
            allowLoopback: r.bool("VIGIL_SSH_ALLOW_LOOPBACK", default: false), allowPrivate: r.bool("VIGIL_SSH_ALLOW_PRIVATE", default: false))
        webGuardrail = SSRFGuard(
            allowLoopback: r.bool("VIGIL_WEB_ALLOW_LOOPBACK", default: false), allowPrivate: r.bool("VIGIL_WEB_ALLOW_PRIVATE", default: false))
        proxyGuardrail = SSRFGuard(
            allowLoopback: r.bool("VIGIL_PROXY_ALLOW_LOOPBACK", default: false), allowPrivate: r.bool("VIGIL_PROXY_ALLOW_PRIVATE", default: false))
        repoPolicy = RepoURLPolicy(allowLocal: r.bool("VIGIL_REPO_ALLOW_LOCAL", default: false))
        repoMirrors = r.string("VIGIL_REPO_MIRRORS", default: NSTemporaryDirectory() + "vigil-repos")
        repoLimits = RepoLimits(
            seconds: Double(max(1, r.int("VIGIL_REPO_SCAN_SECONDS", default: 300))),
            maxBlobBytes: max(1024, r.int("VIGIL_REPO_MAX_FILE_BYTES", default: 5 << 20)))
        osv = r.optional("VIGIL_OSV_DIR").map(OSVDatabase.init(directory:))
        semgrep = Semgrep.locate(r.string("VIGIL_SEMGREP", default: "semgrep"))
        forges = ForgeSettings(
            githubAPI: r.string("VIGIL_GITHUB_API_URL", default: "https://api.github.com"),
            gitlabAPI: r.string("VIGIL_GITLAB_API_URL", default: "https://gitlab.com/api/v4"), extra: r.string("VIGIL_FORGE_HOSTS", default: ""))
        if let k = r.optional("VIGIL_AWS_PLATFORM_ACCESS_KEY_ID"), let s = r.optional("VIGIL_AWS_PLATFORM_SECRET_ACCESS_KEY") {
            platformCredentials = AWSCredentials(accessKeyId: k, secretAccessKey: s, sessionToken: r.optional("VIGIL_AWS_PLATFORM_SESSION_TOKEN"))
        }
    }
}

struct ConnectionSettings: Codable, Sendable {
    /// AWS: the regions scanned, an endpoint override and the proxy profile its calls go through.
    var regions: [String]?
    var endpointUrl: String?
    var proxyId: String?
    /// Linux: `agent` (through `connector_id`) or `ssh` (to `host`:`port` as `username`, the host key pinned in `host_key`).
    var mode: String?
    var connectorId: String?
    var host: String?
    var port: Int?
    var username: String?
    var hostKey: String?
    /// Web: the URL, extra CAs, headers sent with every request, extra paths, the plain-HTTP port checked.
    var url: String?
    var caPem: String?
    var headers: [String: String]?
    var scanPaths: [String]?
    var httpPort: Int?
    /// Repositories: where to clone from, the branch whose tree is scanned (else the remote's HEAD), archived.
    var cloneUrl: String?
    var defaultBranch: String?
    var archived: Bool?
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
    var connections: ConnectionStore { ConnectionStore(db: store) }
    var scans: ScanStore { ScanStore(db: store) }
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

    func validate(_ s: ConnectionSettings?, tenantId: String) async throws -> ConnectionSettings {
        var out = ConnectionSettings(regions: s?.regions ?? ["us-east-1"], endpointUrl: s?.endpointUrl)
        if let pid = s?.proxyId {
            guard ID.isValid(pid), try await ProxyStore(db: store).find(id: pid.lowercased(), tenantId: tenantId) != nil else {
                throw ServiceError.validation("body.settings.proxy_id", "no such proxy profile in this workspace")
            }
            out.proxyId = pid.lowercased()
        }
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

    @Sendable func create(_ req: ConnectionRequest, _ p: Principal, _ ctx: CallContext) async throws -> ConnectionView {
        let name = try Validate.text(req.name ?? "", path: "body.name", max: 100)
        guard let provider = req.provider else { throw ServiceError.validation("body.provider", "field required") }
        guard ["aws", "linux", "web", "repo"].contains(provider) else {
            throw ServiceError.validation("body.provider", "supported providers: aws, linux, web, repo")
        }
        let creds: ConnectionCredentials
        let masked: [String: String]
        let s: ConnectionSettings
        if provider == "linux" {
            (creds, masked, s) = try await validateLinux(req.settings, req.credentials, tenantId: p.tenantId)
        } else if provider == "web" {
            (creds, masked, s) = (ConnectionCredentials(), [:], try await validateWeb(req.settings))
        } else if provider == "repo" {
            (creds, masked, s) = try await validateRepo(req.settings, req.credentials)
        } else {
            guard let c = req.credentials else { throw ServiceError.validation("body.credentials", "field required") }
            creds = c
            masked = try c.validated()
            s = try await validate(req.settings, tenantId: p.tenantId)
        }
        let id = ID.make()
        let sealed = try settings.vault.seal(creds, tenantId: p.tenantId, connectionId: id)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            if let bus {
                try await connections.serializeCreations(tx, tenantId: p.tenantId)
                let n = try await connections.count(tx, tenantId: p.tenantId)
                try await Quotas.check(bus, tenantId: p.tenantId, quota: "connections", inUse: n)
            }
            let view = try await connections.insert(
                tx,
                .init(
                    id: id, tenantId: p.tenantId, name: name, provider: provider, sealed: sealed, keyId: settings.vault.keyId, masked: masked,
                    settings: s))
            try await tx.emit(
                Events.connectionCreated, tenantId: p.tenantId,
                data: ["connection_id": id, "provider": provider, "actor": p.actorId])
            return view
        }
    }

    @Sendable func list(_ req: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ConnectionView> {
        return try await connections.list(try Pagination(req), tenantId: p.tenantId)
    }

    @Sendable func get(_ req: ConnectionPath, _ p: Principal, _ ctx: CallContext) async throws -> ConnectionView {
        let id = try Validate.id(req.connectionId, "connection")
        guard let c = try await connections.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("connection") }
        return c.view
    }

    @Sendable func update(_ req: ConnectionRequest, _ p: Principal, _ ctx: CallContext) async throws -> ConnectionView {
        let id = try Validate.id(req.connectionId ?? "", "connection")
        let name = try req.name.map { try Validate.text($0, path: "body.name", max: 100) }
        guard let existing = try await connections.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("connection") }
        var masked: [String: String]? = nil
        var s: ConnectionSettings? = nil
        if existing.provider == "web" {
            if let given = req.settings { s = try await validateWeb(given) }
        } else if existing.provider == "repo" {
            if req.settings != nil || req.credentials != nil {
                let v = try await validateRepo(req.settings ?? existing.settings, req.credentials ?? ConnectionCredentials())
                if req.credentials != nil { masked = v.masked }
                s = v.settings
            }
        } else if existing.provider == "linux" {
            if req.settings != nil || req.credentials != nil {
                let current = try settings.vault.open(existing.sealedCredentials, tenantId: p.tenantId, connectionId: id)
                let merged = req.settings ?? existing.settings
                let v = try await validateLinux(merged, req.credentials ?? current, tenantId: p.tenantId)
                if req.credentials != nil { masked = v.masked }
                s = v.settings
            }
        } else {
            masked = try req.credentials.map { try $0.validated() }
            if let given = req.settings { s = try await validate(given, tenantId: p.tenantId) }
        }
        let sealed = try req.credentials.map { try settings.vault.seal($0, tenantId: p.tenantId, connectionId: id) }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let view = try await connections.update(
                    tx, id: id, tenantId: p.tenantId,
                    .init(name: name, sealed: sealed, keyId: settings.vault.keyId, masked: masked, settings: s))
            else { throw ServiceError.notFound("connection") }
            try await tx.emit(
                Events.connectionUpdated, tenantId: p.tenantId,
                data: [
                    "connection_id": id, "credentials_changed": req.credentials != nil ? "true" : "false",
                    "actor": p.actorId,
                ])
            return view
        }
    }

    @Sendable func delete(_ req: ConnectionPath, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
        let id = try Validate.id(req.connectionId, "connection")
        defer {
            if let bus {
                Task {
                    let n = (try? await connections.count(tenantId: p.tenantId)) ?? 0
                    await Quotas.report(bus, tenantId: p.tenantId, quota: "connections", inUse: n)
                }
            }
        }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await connections.delete(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("connection") }
            // Running and queued scans of the connection stop; its inventory goes with it.
            for scan in try await scans.cancelAll(tx, tenantId: p.tenantId, connectionId: id, reason: "the connection was deleted") {
                try await ScanEvents.finished(tx, scan, tenantId: p.tenantId, parts: [])
            }
            try await InventoryStore().deleteAll(tx, tenantId: p.tenantId, connectionId: id)
            try await tx.emit(
                Events.connectionDeleted, tenantId: p.tenantId,
                data: ["connection_id": id, "actor": p.actorId])
            return Empty()
        }
    }

    /// STS GetCallerIdentity with the stored credentials (through the endpoint override if any).
    @Sendable func test(_ req: ConnectionPath, _ p: Principal, _ ctx: CallContext) async throws -> ConnectionTestReply {
        let id = try Validate.id(req.connectionId, "connection")
        guard let c = try await connections.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("connection") }
        let reply: ConnectionTestReply
        if c.provider == "linux" {
            reply = await testLinux(c, tenantId: p.tenantId)
        } else if c.provider == "web" {
            reply = await testWeb(c)
        } else if c.provider == "repo" {
            reply = await testRepo(c, tenantId: p.tenantId)
        } else {
            do {
                let session = try await self.session(c, tenantId: p.tenantId)
                reply = ConnectionTestReply(ok: true, accountId: session.account, arn: session.arn, message: "credentials are valid")
            } catch let e as SessionError {
                reply = ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: e.message)
            }
        }
        try await connections.recordTest(id: id, tenantId: p.tenantId, ok: reply.ok, error: reply.ok ? nil : reply.message)
        return reply
    }
}

extension ConnectionHandlers {
    /// Opens the connection's sealed credentials and starts an AWS session with them.
    func session(_ c: StoredConnection, tenantId: String) async throws -> AWSSession {
        let creds = try settings.vault.open(c.sealedCredentials, tenantId: tenantId, connectionId: c.view.id)
        let s = c.settings
        var proxy: ProxyConfig? = nil
        if let pid = s.proxyId { proxy = try await ProxyHandlers(store: store, settings: settings).config(id: pid, tenantId: tenantId) }
        return try await AWSSession.open(
            creds, endpointURL: s.endpointUrl, region: s.regions?.first ?? "us-east-1", guardrail: settings.guardrail,
            platform: settings.platformCredentials, proxy: proxy)
    }
}

extension ConnectionHandlers {
    /// Agent mode: the connector is online. SSH mode: an audit runs (nothing is stored or pinned).
    func testLinux(_ c: StoredConnection, tenantId: String) async -> ConnectionTestReply {
        do {
            if c.settings.mode == "ssh" {
                let target = try await sshTarget(c, tenantId: tenantId)
                let key = try await SSHGatherer(target: target).probe()
                return ConnectionTestReply(
                    ok: true, accountId: target.host, arn: nil,
                    message: "logged in over SSH as \(target.username); host key \(key ?? "unknown")"
                        + (c.settings.hostKey == nil ? " (it is pinned by the first scan)" : " (pinned)"))
            }
            guard let cid = c.settings.connectorId,
                let conn = try await ConnectorStore(db: store, onlineWithin: 90).usable(id: cid, tenantId: tenantId)
            else { return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: "the connector is revoked or unknown") }
            return ConnectionTestReply(
                ok: conn.status == "online", accountId: conn.hostname, arn: nil,
                message: conn.status == "online" ? "the connector is online" : "the connector is \(conn.status)")
        } catch let e as SSHAuditError {
            return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: e.message)
        } catch let e as SessionError {
            return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: e.message)
        } catch {
            return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: "\(error)")
        }
    }

    static let usernamePattern = "^[a-z_][a-z0-9_.-]{0,31}$"
    static let hostPattern = "^[A-Za-z0-9.:-]{1,253}$"

    /// A Linux connection: `agent` names a live connector of the workspace; `ssh` names a host the
    /// SSRF guard allows, a user and a private key. Returns the credentials to seal, their masked form and the settings.
    func validateLinux(
        _ given: ConnectionSettings?, _ creds: ConnectionCredentials?, tenantId: String
    ) async throws -> (credentials: ConnectionCredentials, masked: [String: String], settings: ConnectionSettings) {
        let mode = given?.mode ?? "agent"
        var out = ConnectionSettings(mode: mode)
        var issues: [ValidationIssue] = []
        switch mode {
        case "agent":
            guard let cid = given?.connectorId, ID.isValid(cid) else {
                throw ServiceError.validation("body.settings.connector_id", "field required: the connector that audits the host (agent mode)")
            }
            guard try await ConnectorStore(db: store, onlineWithin: 0).usable(id: cid.lowercased(), tenantId: tenantId) != nil else {
                throw ServiceError.notFound("connector")
            }
            out.connectorId = cid.lowercased()
            return (ConnectionCredentials(), ["mode": "agent"], out)
        case "ssh":
            let host = given?.host ?? ""
            if !Self.matches(host, Self.hostPattern) {
                issues.append(.init(path: "body.settings.host", message: "must be a host name or IP address"))
            }
            let port = given?.port ?? 22
            if !(1...65535).contains(port) { issues.append(.init(path: "body.settings.port", message: "must be between 1 and 65535")) }
            let user = given?.username ?? ""
            if !Self.matches(user, Self.usernamePattern) {
                issues.append(.init(path: "body.settings.username", message: "must be a Linux user name (lowercase, at most 32 characters)"))
            }
            let key = creds?.privateKey ?? ""
            if !(key.hasPrefix("-----BEGIN") && key.contains("PRIVATE KEY-----")) || key.count > 16_384 {
                issues.append(.init(path: "body.credentials.private_key", message: "must be a PEM or OpenSSH private key (from generate-key)"))
            }
            if let k = given?.hostKey, !Self.matches(k, "^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]{16,8192}$") {
                issues.append(.init(path: "body.settings.host_key", message: "must be a public host key: <type> <base64>"))
            }
            guard issues.isEmpty else { throw ServiceError.validation(issues) }
            _ = try await resolve(host: host, port: port)
            out.host = host
            out.port = port
            out.username = user
            out.hostKey = given?.hostKey
            return (ConnectionCredentials(privateKey: key), ["mode": "ssh", "private_key": "**** (\(key.count) characters)"], out)
        default:
            throw ServiceError.validation("body.settings.mode", "must be agent or ssh")
        }
    }

    /// The address an agentless scan may connect to (the SSRF guard's check, DNS included).
    func resolve(host: String, port: Int) async throws -> String {
        let g = settings.sshGuardrail
        let url = host.contains(":") ? "https://[\(host)]:\(port)/" : "https://\(host):\(port)/"
        do {
            return try await Blocking.run { try g.check(url) }.addresses[0].ip
        } catch {
            throw ServiceError.validation("body.settings.host", "\(error)")
        }
    }

    /// Everything an agentless scan needs, the private key opened from the vault.
    func sshTarget(_ c: StoredConnection, tenantId: String) async throws -> SSHTarget {
        let s = c.settings
        guard let host = s.host, let user = s.username else { throw SessionError(message: "the connection has no host or username", permanent: true) }
        let creds = try settings.vault.open(c.sealedCredentials, tenantId: tenantId, connectionId: c.view.id)
        guard let key = creds.privateKey else { throw SessionError(message: "the connection has no private key", permanent: true) }
        let address: String
        do { address = try await resolve(host: host, port: s.port ?? 22) } catch let e as ServiceError {
            throw SessionError(message: e.issues?.first?.message ?? e.message, permanent: true)
        }
        return SSHTarget(host: host, address: address, port: s.port ?? 22, username: user, privateKeyPEM: key, hostKey: s.hostKey)
    }
}

extension ConnectionHandlers {
    /// A web target: an absolute http(s) URL without credentials whose host the web SSRF guard allows,
    /// an optional PEM CA bundle (certificates only, ≤ 64 KB), ≤ 20 extra headers, ≤ 50 extra paths.
    func validateWeb(_ given: ConnectionSettings?) async throws -> ConnectionSettings {
        var issues: [ValidationIssue] = []
        let url = given?.url?.trimmingCharacters(in: .whitespaces) ?? ""
        do { _ = try SSRFGuard.parse(url) } catch { issues.append(.init(path: "body.settings.url", message: "\(error)")) }
        if let pem = given?.caPem {
            if pem.utf8.count > 65_536 {
                issues.append(.init(path: "body.settings.ca_pem", message: "must be at most 64 KB"))
            } else if !pem.contains("-----BEGIN CERTIFICATE-----") || pem.contains("PRIVATE KEY") {
                issues.append(.init(path: "body.settings.ca_pem", message: "must be PEM certificates (-----BEGIN CERTIFICATE-----), no keys"))
            }
        }
        let headers = given?.headers ?? [:]
        if headers.count > 20
            || headers.contains(where: { k, v in
                k.isEmpty || k.count > 100 || v.count > 4096 || !k.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
                    || v.contains(where: \.isNewline) || ["host", "content-length", "connection", "transfer-encoding"].contains(k.lowercased())
            })
        {
            issues.append(
                .init(
                    path: "body.settings.headers", message: "at most 20 headers with token names and single-line values (not Host or framing headers)"
                ))
        }
        let paths = given?.scanPaths ?? []
        if paths.count > 50 || paths.contains(where: { !$0.hasPrefix("/") || $0.count > 500 || $0.contains(where: \.isWhitespace) }) {
            issues.append(.init(path: "body.settings.scan_paths", message: "at most 50 paths, each starting with / and without spaces"))
        }
        if let p = given?.httpPort, !(1...65535).contains(p) {
            issues.append(.init(path: "body.settings.http_port", message: "must be between 1 and 65535"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let g = settings.webGuardrail
        do { _ = try await Blocking.run { try g.check(url) } } catch { throw ServiceError.validation("body.settings.url", "\(error)") }
        var out = ConnectionSettings()
        out.url = url
        out.caPem = given?.caPem
        out.headers = given?.headers
        out.scanPaths = given?.scanPaths
        out.httpPort = given?.httpPort
        return out
    }

    /// One request to the target (redirects followed, each hop checked).
    func testWeb(_ c: StoredConnection) async -> ConnectionTestReply {
        guard let url = c.settings.url else { return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: "the connection has no url") }
        let g = settings.webGuardrail
        do {
            let chain = try await Blocking.run {
                try WebClient(guardrail: g, deadline: .now + .seconds(10), budget: 6, maxBody: 65_536, extraHeaders: c.settings.headers ?? [:])
                    .follow(url)
            }
            let last = chain.last
            return ConnectionTestReply(
                ok: last != nil, accountId: URL(string: url)?.host, arn: nil,
                message: "the site answered HTTP \(last?.status ?? 0)" + (chain.count > 1 ? " after \(chain.count - 1) redirect(s)" : ""))
        } catch {
            return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: "the site could not be reached: \(error)")
        }
    }
}
