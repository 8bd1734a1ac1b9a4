import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct RuleView: Codable, Sendable {
    var id: String
    var title: String
    var severity: String
    var defaultSeverity: String
    var enabled: Bool
    var custom: Bool
    var provider: String
    var service: String
    var resourceType: String
    var category: String
    var appliesIf: Condition?
    var failIf: Condition
    var description: String
    var rationale: String
    var remediation: Rule.Remediation
    var cwe: String?
    var references: [String]
    var compliance: [String: [String]]
    var fixAction: String?
    var autoFix: Bool
    var savings: Rule.Savings?
}
struct RuleListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var provider: String?
    var service: String?
    var severity: String?
    var category: String?
    var framework: String?
    var enabled: Bool?
    var custom: Bool?
    var search: String?
    var resourceType: String?
    /// The reference's names: `status` enabled|disabled, `source` builtin|custom.
    var status: String?
    var source: String?
}
struct RulePath: Codable, Sendable { var ruleId: String }
struct RuleCreate: Codable, Sendable {
    var id: String?
    var title: String?
    var severity: String?
    var resourceType: String?
    var category: String?
    var condition: JSONValue?
    var appliesIf: JSONValue?
    var description: String?
    var rationale: String?
    var remediation: Rule.Remediation?
    var cwe: String?
    var references: [String]?
    var compliance: [String: [String]]?
}
struct RulePatch: Codable, Sendable {
    var ruleId: String
    var enabled: Bool?
    var severity: String?
}

struct RuleHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog

    func register(on r: ServiceResponder) {
        r.add(Endpoint<RuleListRequest, Page<RuleView>>(Subjects.Findings.ruleList), handler: list)
        r.add(Endpoint<RulePath, RuleView>(Subjects.Findings.ruleGet), handler: get)
        r.add(Endpoint<RuleCreate, RuleView>(Subjects.Findings.ruleCreate), handler: create)
        r.add(Endpoint<RulePatch, RuleView>(Subjects.Findings.ruleUpdate), handler: update)
        // Internal: the scanner asks for a workspace's enabled rules at scan start (tenant from the header).
        r.add(Endpoint<Empty, EffectiveRules>(Subjects.Findings.rulesEffective)) { _, ctx in
            guard let t = ctx.tenantId, ID.isValid(t) else { throw ServiceError.validation("header.Vigil-Tenant-Id", "required") }
            return try await store.transaction(.tenant(t)) { tx in
                EffectiveRules(rules: try await catalog.rules(tx, tenantId: t).filter { $0.enabled ?? true })
            }
        }
    }

    static func view(_ r: Rule) -> RuleView {
        let base = RuleCatalog.builtinById[r.id]
        return RuleView(
            id: r.id, title: r.title, severity: r.severity.rawValue, defaultSeverity: (base?.severity ?? r.severity).rawValue,
            enabled: r.enabled ?? true, custom: base == nil, provider: r.provider, service: r.service, resourceType: r.resourceType,
            category: r.category, appliesIf: r.appliesIf, failIf: r.failIf, description: r.description, rationale: r.rationale,
            remediation: r.remediation, cwe: r.cwe, references: r.references ?? [], compliance: r.compliance,
            fixAction: r.fixAction, autoFix: r.fixAction != nil, savings: r.savings)
    }

    @Sendable func list(_ q: RuleListRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<RuleView> {
        let limit = q.limit ?? 100
        guard (1...500).contains(limit) else { throw ServiceError.validation("query.limit", "must be between 1 and 500") }
        var start = q.offset ?? 0
        if let c = q.cursor {
            guard let raw = Data(base64Encoded: c), let s = String(data: raw, encoding: .utf8), s.hasPrefix("rules|"), let n = Int(s.dropFirst(6)),
                n >= 0
            else {
                throw ServiceError.validation("query.cursor", "is not a cursor from this list")
            }
            start = n
        }
        guard start >= 0 else { throw ServiceError.validation("query.offset", "must be 0 or more") }
        let severities = try Validate.list(q.severity, path: "query.severity", allowed: severityNames)
        let fw = try q.framework.map { f -> String in
            guard frameworks.contains(where: { $0.id == f }) else {
                throw ServiceError.validation("query.framework", "must be one of \(frameworks.map(\.id).joined(separator: ", "))")
            }
            return f
        }
        var q = q
        if let s = q.status {
            guard ["enabled", "disabled"].contains(s) else { throw ServiceError.validation("query.status", "must be enabled or disabled") }
            q.enabled = s == "enabled"
        }
        if let s = q.source {
            guard ["builtin", "custom"].contains(s) else { throw ServiceError.validation("query.source", "must be builtin or custom") }
            q.custom = s == "custom"
        }
        let all = try await store.transaction(p.scope) { tx in try await catalog.rules(tx, tenantId: p.tenantId) }
        let needle = q.search?.lowercased()
        let matching = all.filter { r in
            (q.provider == nil || r.provider == q.provider) && (q.service == nil || r.service == q.service)
                && (severities == nil || severities!.contains(r.severity.rawValue)) && (q.category == nil || r.category == q.category)
                && (fw == nil || r.compliance[fw!] != nil) && (q.enabled == nil || (r.enabled ?? true) == q.enabled)
                && (q.custom == nil || (RuleCatalog.builtinById[r.id] == nil) == q.custom)
                && (q.resourceType == nil || r.resourceType == q.resourceType)
                && (needle == nil || r.id.lowercased().contains(needle!) || r.title.lowercased().contains(needle!))
        }.sorted { $0.id < $1.id }
        let slice = Array(matching.dropFirst(start).prefix(limit))
        let next = start + slice.count < matching.count ? Data("rules|\(start + slice.count)".utf8).base64EncodedString() : nil
        return Page(items: slice.map(Self.view), nextCursor: next, total: matching.count)
    }

    @Sendable func get(_ q: RulePath, _ p: Principal, _ ctx: CallContext) async throws -> RuleView {
        let rules = try await store.transaction(p.scope) { tx in try await catalog.rulesById(tx, tenantId: p.tenantId) }
        guard let r = rules[q.ruleId] else { throw ServiceError.notFound("rule") }
        return Self.view(r)
    }

    static func condition(_ v: JSONValue?, path: String) throws -> Condition? {
        guard let v else { return nil }
        do {
            return try JSON.decode(Condition.self, from: try JSON.encode(v))
        } catch let DecodingError.dataCorrupted(c) {
            throw ServiceError.validation(path, "invalid condition: \(c.debugDescription)")
        } catch let DecodingError.keyNotFound(k, _) {
            throw ServiceError.validation(path, "invalid condition: missing \(k.stringValue)")
        } catch let DecodingError.typeMismatch(_, c) {
            throw ServiceError.validation(
                path, "invalid condition: \(c.debugDescription) at \(c.codingPath.map(\.stringValue).joined(separator: "."))")
        } catch {
            throw ServiceError.validation(path, "invalid condition: \(error)")
        }
    }

    @Sendable func create(_ q: RuleCreate, _ p: Principal, _ ctx: CallContext) async throws -> RuleView {
        var issues: [ValidationIssue] = []
        let title =
            (try? Validate.text(q.title ?? "", path: "body.title", max: 200))
            ?? {
                issues.append(.init(path: "body.title", message: "must be 1 to 200 characters"))
                return ""
            }()
        let severity = Severity(rawValue: q.severity ?? "")
        if severity == nil { issues.append(.init(path: "body.severity", message: "must be one of \(severityNames.joined(separator: ", "))")) }
        let type = q.resourceType ?? ""
        if !RuleCatalog.resourceTypes.contains(type) {
            issues.append(.init(path: "body.resource_type", message: "must be a collected resource type, e.g. aws.s3.bucket, aws.ec2.instance"))
        }
        if q.condition == nil { issues.append(.init(path: "body.condition", message: "field required")) }
        let slug = q.id ?? "custom." + String(title.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(60))
        if !slug.hasPrefix("custom.") || slug.count > 100 || slug.dropFirst(7).isEmpty
            || !slug.dropFirst(7).allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" })
        {
            issues.append(.init(path: "body.id", message: "must look like custom.<lowercase letters, digits, _ . ->"))
        }
        if let c = q.compliance, !Set(c.keys).isSubset(of: Set(frameworks.map(\.id))) {
            issues.append(.init(path: "body.compliance", message: "keys must be among \(frameworks.map(\.id).joined(separator: ", "))"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let failIf = try Self.condition(q.condition, path: "body.condition")!
        let appliesIf = try Self.condition(q.appliesIf, path: "body.applies_if")
        let rule = Rule(
            id: slug, title: title, severity: severity!, provider: "aws", service: String(type.split(separator: ".")[1]),
            resourceType: type, category: q.category ?? "custom", appliesIf: appliesIf, failIf: failIf,
            description: try Validate.text(q.description ?? title, path: "body.description", max: 2000),
            rationale: try Validate.text(q.rationale ?? "Custom rule of this workspace.", path: "body.rationale", max: 2000),
            remediation: q.remediation ?? Rule.Remediation(console: "See the rule's description.", cli: nil), cwe: q.cwe,
            references: q.references, compliance: q.compliance ?? [:], fixAction: nil, savings: nil, enabled: true, examples: nil)
        guard RuleCatalog.builtinById[slug] == nil else { throw ServiceError.conflict("a built-in rule has this id", code: "rule_exists") }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await RuleStore.insert(tx, tenantId: p.tenantId, rule, by: p.actorId)
            else {
                throw ServiceError.conflict("a rule with this id exists", code: "rule_exists")
            }
            try await tx.emit(Events.ruleCreated, tenantId: p.tenantId, data: ["rule_id": slug, "actor": p.actorId])
            return Self.view(rule)
        }
    }

    @Sendable func update(_ q: RulePatch, _ p: Principal, _ ctx: CallContext) async throws -> RuleView {
        if let s = q.severity, Severity(rawValue: s) == nil {
            throw ServiceError.validation("body.severity", "must be one of \(severityNames.joined(separator: ", "))")
        }
        guard q.enabled != nil || q.severity != nil else { throw ServiceError.validation("body", "give enabled and/or severity") }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await catalog.rulesById(tx, tenantId: p.tenantId)[q.ruleId] != nil else { throw ServiceError.notFound("rule") }
            try await RuleStore.override(tx, tenantId: p.tenantId, ruleId: q.ruleId, enabled: q.enabled, severity: q.severity, by: p.actorId)
            try await tx.emit(
                Events.ruleUpdated, tenantId: p.tenantId,
                data: ["rule_id": q.ruleId, "enabled": q.enabled.map { "\($0)" } ?? "", "severity": q.severity ?? "", "actor": p.actorId])
            return Self.view(try await catalog.rulesById(tx, tenantId: p.tenantId)[q.ruleId]!)
        }
    }
}
