import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

struct SuppressionRuleCreate: Codable, Sendable {
    var name: String?
    var connectionId: String?
    var rule: String?
    var region: String?
    var resource: String?
    var tags: [String: String]?
    var reason: String?
    var expiresAt: String?
}
struct SuppressionRuleView: Codable, Sendable {
    var id: String
    var name: String
    var connectionId: String?
    var rule: String?
    var region: String?
    var resource: String?
    var tags: [String: String]
    var reason: String
    var expiresAt: Date?
    var createdBy: String?
    var createdAt: Date
    var matched: Int?
}
struct SuppressionPath: Codable, Sendable { var suppressionId: String }

/// Suppression rules: match findings by connection, rule (glob), region, resource (regex) and tags;
/// matching findings are kept but marked suppressed (now and as new ones arrive) until the rule expires.
struct SuppressionHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog

    func register(on r: ServiceResponder) {
        r.add(Endpoint<SuppressionRuleCreate, SuppressionRuleView>(Subjects.Findings.suppressionCreate), handler: create)
        r.add(Endpoint<PageRequest, Page<SuppressionRuleView>>(Subjects.Findings.suppressionList)) { q, p, ctx in
            let page = try Pagination(q)
            return try await store.transaction(p.scope) { tx in
                try await SuppressionStore.list(tx, page, tenantId: p.tenantId)
            }
        }
        r.add(Endpoint<SuppressionPath, Empty>(Subjects.Findings.suppressionDelete)) { q, p, ctx in
            let id = try Validate.id(q.suppressionId, "suppression rule")
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                guard let reopened = try await SuppressionStore.delete(tx, id: id, tenantId: p.tenantId, actor: p.actorId) else {
                    throw ServiceError.notFound("suppression rule")
                }
                // Findings it suppressed come back.
                try await Lifecycle.record(tx, tenantId: p.tenantId, reopened)
                return Empty()
            }
        }
    }

    /// A glob (`aws.s3.*`, `?`) as a LIKE pattern.
    static func like(_ glob: String) -> String {
        var out = ""
        for ch in glob {
            switch ch {
            case "*": out += "%"
            case "?": out += "_"
            case "%", "_", "\\": out += "\\" + String(ch)
            default: out.append(ch)
            }
        }
        return out
    }

    @Sendable func create(_ q: SuppressionRuleCreate, _ p: Principal, _ ctx: CallContext) async throws -> SuppressionRuleView {
        var issues: [ValidationIssue] = []
        let name = (try? Validate.text(q.name ?? "", path: "body.name", max: 200)) ?? ""
        if name.isEmpty { issues.append(.init(path: "body.name", message: "must be 1 to 200 characters")) }
        let reason = (try? Validate.text(q.reason ?? "", path: "body.reason", min: 3, max: 1000)) ?? ""
        if reason.isEmpty { issues.append(.init(path: "body.reason", message: "must be 3 to 1000 characters")) }
        if let c = q.connectionId, !ID.isValid(c) { issues.append(.init(path: "body.connection_id", message: "must be a UUID")) }
        if let g = q.rule, g.isEmpty || g.count > 200 {
            issues.append(.init(path: "body.rule", message: "must be a rule id or glob, 1 to 200 characters"))
        }
        if let re = q.resource, re.isEmpty || re.count > 500 || (try? NSRegularExpression(pattern: re)) == nil {
            issues.append(.init(path: "body.resource", message: "must be a valid regular expression"))
        }
        if let t = q.tags, t.count > 20 { issues.append(.init(path: "body.tags", message: "at most 20 tags")) }
        var expires: Date? = nil
        if let e = q.expiresAt {
            if let d = Timestamp.parse(e), d > Date() {
                expires = d
            } else {
                issues.append(.init(path: "body.expires_at", message: "must be a future ISO 8601 date-time"))
            }
        }
        if q.connectionId == nil && q.rule == nil && q.region == nil && q.resource == nil && (q.tags ?? [:]).isEmpty {
            issues.append(.init(path: "body", message: "give at least one of connection_id, rule, region, resource, tags"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let id = ID.make()
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let (rule, suppressed) = try await SuppressionStore.insert(
                tx, tenantId: p.tenantId,
                .init(
                    id: id, name: name, connectionId: q.connectionId?.lowercased(), glob: q.rule, pattern: q.rule.map(Self.like), region: q.region,
                    resourceRegex: q.resource, tags: q.tags ?? [:], reason: reason, expiresAt: expires, createdBy: p.actorId))
            // Existing open findings that match are suppressed now.
            try await Lifecycle.record(tx, tenantId: p.tenantId, suppressed)
            return rule
        }
    }
}
