import AWS
import Bus
import Contracts
import Foundation
import Net
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct ProxyView: Codable, Sendable {
    var id: String
    var name: String
    var url: String
    var username: String?
    var hasPassword: Bool
    var createdAt: Date
    var updatedAt: Date
    var lastTestedAt: Date?
    var lastTestOk: Bool?
    var lastError: String?
}

/// A create or patch of a proxy profile. On a patch, `username`/`password` given as `null` are removed;
/// left out, they keep their value.
struct ProxyRequest: Codable, Sendable {
    var proxyId: String?
    var name: String?
    var url: String?
    var username: String??
    var password: String??

    enum CodingKeys: String, CodingKey { case proxyId, name, url, username, password }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        proxyId = try c.decodeIfPresent(String.self, forKey: .proxyId)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        url = try c.decodeIfPresent(String.self, forKey: .url)
        if c.contains(.username) { username = .some(try c.decodeIfPresent(String.self, forKey: .username)) }
        if c.contains(.password) { password = .some(try c.decodeIfPresent(String.self, forKey: .password)) }
    }
}

struct ProxyPath: Codable, Sendable { var proxyId: String }
struct ProxyTestRequest: Codable, Sendable {
    var proxyId: String
    var targetUrl: String?
}
struct ProxyTestReply: Codable, Sendable {
    var ok: Bool
    var message: String
    var targetUrl: String
    var statusCode: Int?
    var latencyMs: Int
}

/// `/proxies`: outbound HTTP proxy profiles a connection can name in `settings.proxy_id`; its scans
/// then reach the provider's API only through that proxy (`CONNECT` tunnels, TLS end to end). The proxy's
/// address passes the proxy SSRF guard (`VIGIL_PROXY_ALLOW_LOOPBACK` / `_PRIVATE`) when saved and at
/// every use; the password is sealed and never returned.
struct ProxyHandlers: Sendable {
    let store: Store
    let settings: ScanSettings
    var proxies: ProxyStore { ProxyStore(db: store) }

    static let defaultTarget = "https://sts.amazonaws.com/"

    func register(on r: ServiceResponder) {
        r.add(Endpoint<ProxyRequest, ProxyView>(Subjects.Scans.proxyCreate), handler: create)
        r.add(Endpoint<PageRequest, Page<ProxyView>>(Subjects.Scans.proxyList)) { q, p, _ in
            try await proxies.list(try Pagination(q), tenantId: p.tenantId)
        }
        r.add(Endpoint<ProxyPath, ProxyView>(Subjects.Scans.proxyGet)) { q, p, _ in
            guard let found = try await proxies.find(id: try Validate.id(q.proxyId, "proxy"), tenantId: p.tenantId) else {
                throw ServiceError.notFound("proxy")
            }
            return found.view
        }
        r.add(Endpoint<ProxyRequest, ProxyView>(Subjects.Scans.proxyUpdate), handler: update)
        r.add(Endpoint<ProxyPath, Empty>(Subjects.Scans.proxyDelete), handler: delete)
        r.add(Endpoint<ProxyTestRequest, ProxyTestReply>(Subjects.Scans.proxyTest), handler: test)
    }

    /// The URL as stored (`http://host:port`) and the credentials it carried, if any.
    func validateURL(_ text: String) async throws -> (url: String, config: ProxyConfig) {
        guard text.count <= 2048, let c = ProxyConfig.parse(text.trimmingCharacters(in: .whitespaces)) else {
            throw ServiceError.validation(
                "body.url", "must be http://host:port (an HTTP proxy; TLS to the destination runs inside the tunnel, end to end)")
        }
        _ = try await checkAddress(c, path: "body.url")
        let host = c.host.contains(":") ? "[\(c.host)]" : c.host
        return ("http://\(host):\(c.port)", c)
    }

    /// The address to connect to for the proxy, as the proxy SSRF guard allows it.
    func checkAddress(_ c: ProxyConfig, path: String) async throws -> String {
        let g = settings.proxyGuardrail
        let url = c.host.contains(":") ? "http://[\(c.host)]:\(c.port)/" : "http://\(c.host):\(c.port)/"
        do { return try await Blocking.run { try g.check(url) }.addresses[0].ip } catch {
            throw ServiceError.validation(path, "the proxy address is not allowed: \(error)")
        }
    }

    static func checkCredentials(username: String?, password: String?, hasPassword: Bool) throws {
        var issues: [ValidationIssue] = []
        if let u = username, u.isEmpty || u.count > 256 || u.contains(":") || u.contains(where: { $0.isNewline }) {
            issues.append(.init(path: "body.username", message: "must be 1 to 256 characters without ':' or line breaks"))
        }
        if let p = password, p.isEmpty || p.count > 1024 || p.contains(where: { $0.isNewline }) {
            issues.append(.init(path: "body.password", message: "must be 1 to 1024 characters without line breaks"))
        }
        if hasPassword && username == nil {
            issues.append(.init(path: "body.password", message: "a password needs a username"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
    }

    func seal(_ password: String?, tenantId: String, proxyId: String) throws -> Data? {
        try password.map { try settings.vault.seal(ConnectionCredentials(password: $0), tenantId: tenantId, connectionId: proxyId) }
    }

    @Sendable func create(_ q: ProxyRequest, _ p: Principal, _ ctx: CallContext) async throws -> ProxyView {
        let name = try Validate.text(q.name ?? "", path: "body.name", max: 100)
        guard let given = q.url else { throw ServiceError.validation("body.url", "field required") }
        let (url, parsed) = try await validateURL(given)
        let username = (q.username ?? nil) ?? parsed.username
        let password = (q.password ?? nil) ?? parsed.password
        try Self.checkCredentials(username: username, password: password, hasPassword: password != nil)
        let id = ID.make()
        let sealed = try seal(password, tenantId: p.tenantId, proxyId: id)
        do {
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                let view = try await proxies.insert(
                    tx, id: id, tenantId: p.tenantId,
                    .init(name: name, url: url, username: .some(username), sealedPassword: .some(sealed), keyId: settings.vault.keyId), by: p.actorId)
                try await tx.emit(Events.proxyCreated, tenantId: p.tenantId, data: ["proxy_id": id, "actor": p.actorId])
                return view
            }
        } catch let e as StoreError where e.isUniqueViolation {
            throw ServiceError.conflict("a proxy profile named \(name) exists in this workspace")
        }
    }

    @Sendable func update(_ q: ProxyRequest, _ p: Principal, _ ctx: CallContext) async throws -> ProxyView {
        let id = try Validate.id(q.proxyId ?? "", "proxy")
        guard let existing = try await proxies.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("proxy") }
        let name = try q.name.map { try Validate.text($0, path: "body.name", max: 100) }
        var validated: (url: String, config: ProxyConfig)? = nil
        if let u = q.url { validated = try await validateURL(u) }
        // Left out: kept; null: removed. Credentials in a new URL count as given; a removed username takes the password with it.
        var username = q.username
        var password = q.password
        if let v = validated, v.config.username != nil {
            username = username ?? .some(v.config.username)
            password = password ?? .some(v.config.password)
        }
        if case .some(.none) = username { password = .some(nil) }
        if username == nil, password == nil, name == nil, validated == nil {
            throw ServiceError.validation("body", "give name, url, username and/or password")
        }
        try Self.checkCredentials(
            username: username ?? existing.view.username, password: password ?? nil,
            hasPassword: password.map { $0 != nil } ?? existing.view.hasPassword)
        let sealed: Data?? = try password.map { try seal($0, tenantId: p.tenantId, proxyId: id) }
        do {
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                guard
                    let view = try await proxies.update(
                        tx, id: id, tenantId: p.tenantId,
                        .init(name: name, url: validated?.url, username: username, sealedPassword: sealed, keyId: settings.vault.keyId))
                else { throw ServiceError.notFound("proxy") }
                try await tx.emit(Events.proxyUpdated, tenantId: p.tenantId, data: ["proxy_id": id, "actor": p.actorId])
                return view
            }
        } catch let e as StoreError where e.isUniqueViolation {
            throw ServiceError.conflict("a proxy profile with that name exists in this workspace")
        }
    }

    @Sendable func delete(_ q: ProxyPath, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
        let id = try Validate.id(q.proxyId, "proxy")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let users = try await proxies.users(tx, id: id, tenantId: p.tenantId)
            if !users.isEmpty {
                throw ServiceError.conflict(
                    "the proxy profile is used by connection(s) \(users.prefix(10).joined(separator: ", ")); point them elsewhere first",
                    code: "proxy_in_use")
            }
            guard try await proxies.delete(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("proxy") }
            try await tx.emit(Events.proxyDeleted, tenantId: p.tenantId, data: ["proxy_id": id, "actor": p.actorId])
            return Empty()
        }
    }

    /// What a connection's calls go through: the profile's checked address and its opened credentials.
    func config(id: String, tenantId: String) async throws -> ProxyConfig {
        guard let found = try await proxies.find(id: id, tenantId: tenantId) else {
            throw SessionError(message: "the connection's proxy profile no longer exists", permanent: true)
        }
        return try await config(found, tenantId: tenantId)
    }

    func config(_ found: ProxyStore.Stored, tenantId: String) async throws -> ProxyConfig {
        guard var c = ProxyConfig.parse(found.view.url) else { throw SessionError(message: "the proxy profile's URL is unreadable", permanent: true) }
        do { c.host = try await checkAddress(c, path: "url") } catch let e as ServiceError {
            throw SessionError(message: e.issues?.first?.message ?? e.message, permanent: true)
        }
        c.username = found.view.username
        if let sealed = found.sealedPassword {
            c.password = try settings.vault.open(sealed, tenantId: tenantId, connectionId: found.view.id).password
        }
        return c
    }

    /// One request through the proxy to the target (AWS STS unless given): any HTTP answer from the
    /// target proves the tunnel; a refusal by the proxy (407, 403, an unreachable target) does not.
    @Sendable func test(_ q: ProxyTestRequest, _ p: Principal, _ ctx: CallContext) async throws -> ProxyTestReply {
        let id = try Validate.id(q.proxyId, "proxy")
        guard let found = try await proxies.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("proxy") }
        let target = q.targetUrl ?? Self.defaultTarget
        let g = settings.guardrail
        do { _ = try await Blocking.run { try g.check(target) } } catch {
            throw ServiceError.validation("body.target_url", "\(error)")
        }
        let config: ProxyConfig
        do { config = try await self.config(found, tenantId: p.tenantId) } catch let e as SessionError {
            try await proxies.recordTest(id: id, tenantId: p.tenantId, ok: false, error: e.message)
            return ProxyTestReply(ok: false, message: e.message, targetUrl: target, statusCode: nil, latencyMs: 0)
        }
        let started = ContinuousClock.now
        let reply: ProxyTestReply
        do {
            let r = try await PooledHTTP(timeout: .seconds(8), proxy: config).send(method: "GET", url: target, headers: [:], body: [], maxBody: 1024)
            reply = ProxyTestReply(
                ok: true, message: "the proxy tunnelled to the target, which answered HTTP \(r.status)", targetUrl: target, statusCode: r.status,
                latencyMs: Self.ms(since: started))
        } catch {
            reply = ProxyTestReply(
                ok: false, message: "the request through the proxy failed: \(error)", targetUrl: target, statusCode: nil,
                latencyMs: Self.ms(since: started))
        }
        try await proxies.recordTest(id: id, tenantId: p.tenantId, ok: reply.ok, error: reply.ok ? nil : reply.message)
        return reply
    }

    static func ms(since start: ContinuousClock.Instant) -> Int {
        let d = ContinuousClock.now - start
        return Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }
}
