import Bus
import Contracts
import Foundation
import Net
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto
import Web

struct DomainView: Codable, Sendable {
    var id: String
    var domain: String
    var status: String
    var token: String
    var methods: [String: [String: String]]
    var method: String?
    var verifiedAt: Date?
    var lastCheckedAt: Date?
    var lastError: String?
    var createdAt: Date
}
struct DomainRequest: Codable, Sendable { var domain: String? }
struct DomainPath: Codable, Sendable {
    var domainId: String
    var method: String? = nil
}

/// `/domains`: proof that a workspace controls a domain, needed for active web scans. The file method
/// reads `https://<domain>/.well-known/vigil-verification.txt` (through the web SSRF guard, redirects
/// only within the domain) and wants the token in it. The DNS TXT record is shown but not checked yet.
struct DomainHandlers: Sendable {
    let store: Store
    let settings: ScanSettings
    var domains: DomainStore { DomainStore(db: store) }
    static let wellKnownPath = "/.well-known/vigil-verification.txt"

    func register(on r: ServiceResponder) {
        r.add(Endpoint<DomainRequest, DomainView>(Subjects.Scans.domainCreate), handler: create)
        r.add(Endpoint<PageRequest, Page<DomainView>>(Subjects.Scans.domainList)) { q, p, _ in
            try await domains.list(try Pagination(q), tenantId: p.tenantId)
        }
        r.add(Endpoint<DomainPath, DomainView>(Subjects.Scans.domainGet)) { q, p, _ in
            guard let d = try await domains.find(id: try Validate.id(q.domainId, "domain"), tenantId: p.tenantId) else {
                throw ServiceError.notFound("domain")
            }
            return d
        }
        r.add(Endpoint<DomainPath, DomainView>(Subjects.Scans.domainVerify), handler: verify)
        r.add(Endpoint<DomainPath, Empty>(Subjects.Scans.domainDelete)) { q, p, ctx in
            let id = try Validate.id(q.domainId, "domain")
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                guard try await domains.delete(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("domain") }
                try await tx.emit(Events.domainDeleted, tenantId: p.tenantId, data: ["domain_id": id, "actor": p.actorId])
                return Empty()
            }
        }
    }

    static let labelPattern = "^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$"

    /// A host name or IPv4 address, lower case, optionally with a port (`shop.example.com`, `10.0.0.5:8443`).
    static func normalize(_ given: String) throws -> String {
        let d = given.trimmingCharacters(in: .whitespaces).lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        guard (try? Regex(labelPattern).wholeMatch(in: d)) != nil else {
            throw ServiceError.validation("body.domain", "must be a host name such as shop.example.com (optionally with :port), no scheme or path")
        }
        if let port = d.split(separator: ":").dropFirst().first, !(1...65535).contains(Int(port) ?? 0) {
            throw ServiceError.validation("body.domain", "the port must be between 1 and 65535")
        }
        return d
    }

    @Sendable func create(_ q: DomainRequest, _ p: Principal, _ ctx: CallContext) async throws -> DomainView {
        let domain = try Self.normalize(q.domain ?? "")
        let token = "vigil-verify-" + Sodium.randomBytes(16).map { String(format: "%02x", $0) }.joined()
        let id = ID.make()
        do {
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                let v = try await domains.insert(tx, id: id, tenantId: p.tenantId, domain: domain, token: token, by: p.actorId)
                try await tx.emit(Events.domainCreated, tenantId: p.tenantId, data: ["domain_id": id, "domain": domain, "actor": p.actorId])
                return v
            }
        } catch let e as StoreError where e.isUniqueViolation {
            throw ServiceError.conflict("\(domain) is already listed in this workspace")
        }
    }

    @Sendable func verify(_ q: DomainPath, _ p: Principal, _ ctx: CallContext) async throws -> DomainView {
        let id = try Validate.id(q.domainId, "domain")
        guard let d = try await domains.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("domain") }
        let method = q.method ?? "file"
        guard method == "file" else {
            throw ServiceError.validation("body.method", method == "dns_txt" ? "DNS TXT verification is not available yet; use file" : "must be file")
        }
        let url = "https://\(d.domain)\(Self.wellKnownPath)"
        let g = settings.webGuardrail
        var problem: String? = nil
        do {
            let chain = try await Blocking.run {
                try WebClient(guardrail: g, deadline: .now + .seconds(10), budget: 4, maxBody: 4096).follow(url, limit: 3)
            }
            let last = chain.last
            let host = d.domain.split(separator: ":").first.map(String.init) ?? d.domain
            if let last, URL(string: last.url)?.host?.lowercased() != host {
                problem = "the verification file redirected to another host"
            } else if last?.status != 200 {
                problem = "\(url) answered HTTP \(last?.status ?? 0)"
            } else if !(last?.text.contains(d.token) ?? false) {
                problem = "\(url) does not contain the token"
            }
        } catch {
            problem = "\(url) could not be read: \(error)"
        }
        let verified = problem == nil
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let v = try await domains.record(tx, id: id, tenantId: p.tenantId, verified: verified, method: method, error: problem) else {
                throw ServiceError.notFound("domain")
            }
            if verified {
                try await tx.emit(Events.domainVerified, tenantId: p.tenantId, data: ["domain_id": id, "domain": d.domain, "actor": p.actorId])
            }
            return v
        }
    }
}
