import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct FindingView: Codable, Sendable {
    var id: String
    var fingerprint: String
    var ruleCode: String
    var title: String
    var severity: String
    var status: String
    var provider: String
    var service: String
    var resourceId: String
    var resourceType: String
    var resourceName: String
    var region: String
    var connectionId: String
    var scanJobId: String
    var category: String?
    var description: String?
    var rationale: String?
    var remediation: Rule.Remediation?
    var cwe: String?
    var evidence: [String: JSONValue]
    var compliance: [String: [String]]
    var estimatedMonthlySavings: Double?
    var autoFix: Bool
    var fixAction: String?
    var tags: [String: String]
    var firstSeenAt: Date
    var lastSeenAt: Date
    var resolvedAt: Date?
    var statusReason: String?
    var statusActor: String?
    var statusExpiresAt: Date?
    var suppressionRuleId: String?
    var history: [FindingEventView]?
    /// FixVibe's names for the same facts (check_id = rule id, scan_id = the last scan, cwe_id = cwe).
    var checkId: String? = nil
    var scanId: String? = nil
    var cweId: String? = nil
}
struct FindingEventView: Codable, Sendable {
    var id: String
    var findingId: String
    var connectionId: String
    var ruleCode: String
    var severity: String
    var eventType: String
    var fromStatus: String?
    var toStatus: String
    var actor: String?
    var reason: String?
    var scanId: String?
    var createdAt: Date
}
struct FindingListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var severity: String?
    var status: String?
    var provider: String?
    var ruleCode: String?
    /// FixVibe's name for `rule_code`.
    var checkId: String? = nil
    /// Findings first seen at or after this instant (RFC 3339).
    var since: String? = nil
    var connectionId: String?
    var scanJobId: String?
    var autoFixOnly: Bool?
    var search: String?
    var sortBy: String?
    /// Only findings marked handled (not a query parameter: set by `GET /findings/handled`).
    var handledOnly: Bool? = nil
}
struct FindingPath: Codable, Sendable { var findingId: String }
struct HandledRequest: Codable, Sendable {
    var findingId: String
    var note: String?
}
struct StatusChange: Codable, Sendable {
    var findingId: String
    var reason: String?
    var expiresAt: String?
}
struct EventListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var connectionId: String?
    /// The code-security API's names: a repository is a connection; `skip` is `offset`; `scan_type` narrows to its checks.
    var repositoryId: String? = nil
    var scanType: String? = nil
    var skip: Int? = nil
    var findingId: String?
    var severity: String?
    var eventType: String?
    var start: String?
    var end: String?
}

struct FindingHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog
    /// The largest answer the bus carries: a list page is cut to fit under it.
    let maxReply: Int
    static let statuses = ["open", "resolved", "suppressed", "accepted_risk"]
    static let eventTypes = ["opened", "resolved", "reopened", "suppressed", "accepted_risk", "expired"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<FindingListRequest, Page<RenderedJSON<FindingView>>>(Subjects.Findings.findingList), handler: list)
        r.add(Endpoint<FindingPath, FindingView>(Subjects.Findings.findingGet), handler: get)
        r.add(Endpoint<Empty, Summary>(Subjects.Findings.findingSummary), handler: summary)
        r.add(Endpoint<Empty, Trend>(Subjects.Findings.findingResolutionTrend), handler: trend)
        r.add(Endpoint<Empty, Coverage>(Subjects.Findings.findingCoverageSummary), handler: coverage)
        r.add(Endpoint<StatusChange, FindingView>(Subjects.Findings.findingSuppress)) { try await change($0, $1, $2, to: "suppressed") }
        // "Handled" (the waste scanners' word): a suppression whose reason starts with `handled`.
        r.add(Endpoint<HandledRequest, FindingView>(Subjects.Findings.findingHandled)) { q, p, ctx in
            let note = try q.note.map { try Validate.text($0, path: "body.note", min: 1, max: 990) }
            return try await change(StatusChange(findingId: q.findingId, reason: "handled: " + (note ?? "marked handled")), p, ctx, to: "suppressed")
        }
        r.add(Endpoint<PageRequest, Page<RenderedJSON<FindingView>>>(Subjects.Findings.findingHandledList)) { q, p, _ in
            var list = FindingListRequest(limit: q.limit, cursor: q.cursor, offset: q.offset)
            list.status = "suppressed"
            list.handledOnly = true
            return try await self.list(list, p, CallContext())
        }
        r.add(Endpoint<StatusChange, FindingView>(Subjects.Findings.findingAcceptRisk)) { try await change($0, $1, $2, to: "accepted_risk") }
        r.add(Endpoint<StatusChange, FindingView>(Subjects.Findings.findingReopen)) { try await change($0, $1, $2, to: "open") }
        r.add(Endpoint<FindingPath, RemediationGuide>(Subjects.Findings.findingAiRemediation), handler: remediation)
        r.add(Endpoint<EventListRequest, Page<RenderedJSON<FindingEventView>>>(Subjects.Findings.eventList), handler: events)
    }

    @Sendable func list(_ q: FindingListRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<RenderedJSON<FindingView>> {
        var f = Filter(tenant: p.tenantId)
        if let s = try Validate.list(q.severity, path: "query.severity", allowed: severityNames) {
            f.add({ "severity = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let s = try Validate.list(q.status, path: "query.status", allowed: Self.statuses) {
            f.add({ "status = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let s = try Validate.list(q.provider, path: "query.provider", allowed: ["aws", "linux", "host", "web", "repo"]) {
            // Linux connections' findings carry the host provider's name.
            f.add({ "provider = ANY($\($0)::text[])" }, ArrayParameter(s.map { $0 == "linux" ? "host" : $0 }))
        }
        if let s = try Validate.list(q.ruleCode, path: "query.rule_code", lower: false) {
            f.add({ "rule_id = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let s = try Validate.list(q.checkId, path: "query.check_id", lower: false) {
            f.add({ "rule_id = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let since = q.since {
            guard let d = Timestamp.parse(since) else {
                throw ServiceError.validation("query.since", "must be an RFC 3339 time like 2026-04-01T00:00:00Z")
            }
            f.add({ "first_seen_at >= $\($0)::timestamptz" }, Timestamp.format(d))
        }
        if let c = try Filter.uuid(q.connectionId, path: "query.connection_id") { f.add({ "connection_id = $\($0)" }, c) }
        if let c = try Filter.uuid(q.scanJobId, path: "query.scan_job_id") { f.add({ "last_scan_id = $\($0)" }, c) }
        if let s = q.search {
            guard (1...200).contains(s.count) else { throw ServiceError.validation("query.search", "must be 1 to 200 characters") }
            let like =
                "%"
                + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
                + "%"
            f.add({ "(title ILIKE $\($0) OR resource_name ILIKE $\($0) OR resource_id ILIKE $\($0))" }, like)
        }
        if q.handledOnly == true { f.add({ "status_reason LIKE $\($0)" }, "handled%") }
        let page = try SortedPage(sortBy: q.sortBy, limit: q.limit, cursor: q.cursor, offset: q.offset)
        return try await store.transaction(p.scope) { tx in
            let rules = try await catalog.definitionsById(tx, tenantId: p.tenantId)
            if q.autoFixOnly == true {
                let fixable = rules.values.filter { $0.fixAction != nil }.map(\.id)
                f.add({ "rule_id = ANY($\($0)::text[])" }, ArrayParameter(fixable))
            }
            return try await FindingStore.list(tx, f, page, counted: q.cursor == nil, fitting: maxReply - 64 * 1024, rules: rules)
        }
    }

    func load(_ tx: Transaction, _ p: Principal, _ rawId: String, lock: Bool = false) async throws -> Row {
        let id = try Validate.id(rawId, "finding")
        guard let row = try await FindingStore.load(tx, id: id, tenantId: p.tenantId, lock: lock) else { throw ServiceError.notFound("finding") }
        return row
    }

    @Sendable func get(_ q: FindingPath, _ p: Principal, _ ctx: CallContext) async throws -> FindingView {
        return try await store.transaction(p.scope) { tx in
            var view = try FindingStore.view(try await load(tx, p, q.findingId), rules: try await catalog.definitionsById(tx, tenantId: p.tenantId))
            view.history = try await FindingStore.history(tx, findingId: view.id, tenantId: p.tenantId)
            return view
        }
    }

    @Sendable func change(_ q: StatusChange, _ p: Principal, _ ctx: CallContext, to target: String) async throws -> FindingView {
        let reason: String?
        if target == "open" {
            reason = try q.reason.map { try Validate.text($0, path: "body.reason", min: 1, max: 1000) }
        } else {
            reason = try Validate.text(q.reason ?? "", path: "body.reason", min: 3, max: 1000)
        }
        var expires: Date? = nil
        if let e = q.expiresAt {
            guard target != "open" else { throw ServiceError.validation("body.expires_at", "only suppressions and risk acceptances expire") }
            guard let d = Timestamp.parse(e) else { throw ServiceError.validation("body.expires_at", "must be an ISO 8601 date-time") }
            guard d > Date(), d < Date().addingTimeInterval(3 * 366 * 86400) else {
                throw ServiceError.validation("body.expires_at", "must be in the future and within 3 years")
            }
            expires = d
        }
        let allowedFrom: [String: [String]] = [
            "suppressed": ["open", "accepted_risk"], "accepted_risk": ["open", "suppressed"],
            "open": ["suppressed", "accepted_risk", "resolved"],
        ]
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let row = try await load(tx, p, q.findingId, lock: true)
            let current = try row.string("status")
            guard allowedFrom[target]!.contains(current) else {
                throw ServiceError.conflict("a finding that is \(current) cannot become \(target)", code: "invalid_transition")
            }
            let updated = try await FindingStore.setStatus(
                tx, id: try row.string("id"), tenantId: p.tenantId, to: target, reason: reason, actor: p.actorId, expiresAt: expires)
            try await Lifecycle.record(
                tx, tenantId: p.tenantId,
                [
                    Transition(
                        findingId: try row.string("id"), connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
                        severity: try row.string("severity"), eventType: target == "open" ? "reopened" : target, from: current, to: target,
                        actor: p.actorId, reason: reason, scanId: nil, resourceId: try row.string("resource_id"), title: try row.string("title"))
                ])
            return try FindingStore.view(updated, rules: try await catalog.definitionsById(tx, tenantId: p.tenantId))
        }
    }

    @Sendable func events(_ q: EventListRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<RenderedJSON<FindingEventView>> {
        var f = Filter(tenant: p.tenantId)
        if let c = try Filter.uuid(q.connectionId, path: "query.connection_id") { f.add({ "connection_id = $\($0)" }, c) }
        if let c = try Filter.uuid(q.repositoryId, path: "query.repository_id") { f.add({ "connection_id = $\($0)" }, c) }
        if let t = q.scanType { f.add({ "rule_id LIKE $\($0)" }, try RepoFindingHandlers.rulePattern(t)) }
        if let c = try Filter.uuid(q.findingId, path: "query.finding_id") { f.add({ "finding_id = $\($0)" }, c) }
        if let s = try Validate.list(q.severity, path: "query.severity", allowed: severityNames) {
            f.add({ "severity = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let s = try Validate.list(q.eventType, path: "query.event_type", allowed: Self.eventTypes) {
            f.add({ "event_type = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        let start = try Filter.date(q.start, path: "query.start")
        let end = try Filter.date(q.end, path: "query.end")
        if let start, let end, end < start { throw ServiceError.validation("query.end", "must not be before start") }
        if let start { f.add({ "created_at >= $\($0)" }, start) }
        if let end { f.add({ "created_at < $\($0)" }, end) }
        let page = try SortedPage(sortBy: nil, limit: q.limit, cursor: q.cursor, offset: q.offset ?? q.skip)
        return try await store.transaction(p.scope) { tx in
            try await FindingStore.list(tx, "findings.finding_events", f, page, counted: q.cursor == nil, fitting: maxReply - 64 * 1024) {
                try FindingStore.event($0).writeJSON(into: &$1)
            }
        }
    }

    // MARK: summary, trend, coverage

    struct Summary: Codable, Sendable {
        var total: Int
        var open: Int
        var bySeverity: [String: Int]
        var byStatus: [String: Int]
        var openBySeverity: [String: Int]
        var totalResolvedLast30d: Int
        var estimatedMonthlySavings: Double
        /// Open findings' monthly savings per service (`ec2`, `rds`…), USD.
        var savingsByService: [String: Double]
        var byConnection: [String: ConnectionCounts]
        enum CodingKeys: String, CodingKey {
            case total, open, bySeverity, byStatus, openBySeverity, estimatedMonthlySavings, byConnection, savingsByService
            case totalResolvedLast30d = "total_resolved_last_30d"
        }
    }
    struct ConnectionCounts: Codable, Sendable {
        var open: Int
        var resolvedLast30d: Int
        enum CodingKeys: String, CodingKey {
            case open
            case resolvedLast30d = "resolved_last_30d"
        }
    }

    @Sendable func summary(_ q: Empty, _ p: Principal, _ ctx: CallContext) async throws -> Summary {
        return try await store.transaction(p.scope) { tx in
            var s = Summary(
                total: 0, open: 0, bySeverity: Dictionary(uniqueKeysWithValues: severityNames.map { ($0, 0) }),
                byStatus: Dictionary(uniqueKeysWithValues: Self.statuses.map { ($0, 0) }),
                openBySeverity: Dictionary(uniqueKeysWithValues: severityNames.map { ($0, 0) }),
                totalResolvedLast30d: 0, estimatedMonthlySavings: 0, savingsByService: [:], byConnection: [:])
            for cell in try await FindingStore.counts(tx, tenantId: p.tenantId) {
                let (n, sev, st, r30, conn) = (cell.count, cell.severity, cell.status, cell.resolvedLast30d, cell.connectionId)
                s.total += n
                s.bySeverity[sev, default: 0] += n
                s.byStatus[st, default: 0] += n
                if st == "open" {
                    s.open += n
                    s.openBySeverity[sev, default: 0] += n
                }
                s.totalResolvedLast30d += r30
                s.estimatedMonthlySavings += cell.openSavings
                if cell.openSavings > 0 { s.savingsByService[cell.service, default: 0] += cell.openSavings }
                var c = s.byConnection[conn] ?? ConnectionCounts(open: 0, resolvedLast30d: 0)
                if st == "open" { c.open += n }
                c.resolvedLast30d += r30
                s.byConnection[conn] = c
            }
            s.estimatedMonthlySavings = (s.estimatedMonthlySavings * 100).rounded() / 100
            s.savingsByService = s.savingsByService.mapValues { ($0 * 100).rounded() / 100 }
            return s
        }
    }

    struct Week: Codable, Sendable {
        var week: String
        var weekStart: String
        var opened: Int
        var resolved: Int
    }
    struct Trend: Codable, Sendable { var weeks: [Week] }

    /// Exactly 12 ISO weeks, oldest first, the current week last, zero-filled.
    @Sendable func trend(_ q: Empty, _ p: Principal, _ ctx: CallContext) async throws -> Trend {
        return Trend(weeks: try await FindingStore(db: store).weeks(tenantId: p.tenantId))
    }

    struct ConnectionCoverage: Codable, Sendable {
        var connectionId: String
        var lastScanId: String
        var lastScanAt: Date
        var complete: Bool
        var resourcesScanned: Int
        var checksEvaluated: Int
        var checksPassed: Int
        var checksFailed: Int
        var rulesEvaluated: Int
        var passRate: Double
        var servicesCovered: [String]
        var openFindings: Int
    }
    struct Coverage: Codable, Sendable {
        var connections: [ConnectionCoverage]
        var totalResources: Int
        var totalChecks: Int
        var passRate: Double
        var rulesAvailable: Int
    }

    @Sendable func coverage(_ q: Empty, _ p: Principal, _ ctx: CallContext) async throws -> Coverage {
        return try await store.transaction(p.scope) { tx in
            let out = try await FindingStore.latestScans(tx, tenantId: p.tenantId)
            let checks = out.reduce(0) { $0 + $1.checksEvaluated }
            let passed = out.reduce(0) { $0 + $1.checksPassed }
            return Coverage(
                connections: out, totalResources: out.reduce(0) { $0 + $1.resourcesScanned }, totalChecks: checks,
                passRate: checks == 0 ? 0 : (Double(passed) / Double(checks) * 1000).rounded() / 1000,
                rulesAvailable: try await catalog.rules(tx, tenantId: p.tenantId).filter { $0.enabled ?? true }.count)
        }
    }

    @Sendable func remediation(_ q: FindingPath, _ p: Principal, _ ctx: CallContext) async throws -> RemediationGuide {
        return try await store.transaction(p.scope) { tx in
            let row = try await load(tx, p, q.findingId)
            let id = try row.string("id")
            if var guide = try await FindingStore.cachedGuide(tx, findingId: id, tenantId: p.tenantId) {
                guide.cached = true
                return guide
            }
            let rules = try await catalog.rulesById(tx, tenantId: p.tenantId)
            guard let rule = rules[try row.string("rule_id")] else {
                throw ServiceError.conflict("the finding's rule no longer exists", code: "rule_missing")
            }
            let guide = Remediations.guide(rule: rule, row: row)
            try await FindingStore.saveGuide(tx, guide, findingId: id, tenantId: p.tenantId)
            return guide
        }
    }
}

/// The fields every finding of a built-in rule shares, rendered to JSON once: a page of findings repeats
/// each rule's compliance map, description and rationale hundreds of times, and writing them afresh was
/// a third of a list page's cost. A workspace's overrides change only a rule's severity and whether it
/// runs, neither of which is here; custom rules (other ids) are written field by field.
enum BuiltinRuleJSON {
    struct Fragments: Sendable {
        let compliance: String
        let description: String
        let rationale: String
    }
    static let byId: [String: Fragments] = RuleCatalog.builtinById.mapValues { r in
        var compliance = [UInt8]()
        FastJSON.map(r.compliance, into: &compliance) { FastJSON.strings($0, into: &$1) }
        return Fragments(
            compliance: String(decoding: compliance, as: UTF8.self), description: FastJSON.quote(r.description),
            rationale: FastJSON.quote(r.rationale))
    }
}

extension FindingStore {
    /// A finding row as `FindingView` encodes (byte for byte `JSON.encode(view(r, rules:))`, which
    /// FindingsWriterTests checks), written straight from the row: list pages skip the view, and with it
    /// copying every column and parsing the evidence and tags back out of JSON when they are empty.
    static func writeJSON(_ r: Row, rules: [String: Rule], into out: inout [UInt8]) throws {
        let ruleCode = try r.string("rule_id")
        let rule = rules[ruleCode]
        let shared = BuiltinRuleJSON.byId[ruleCode]
        let scanId = try r.string("last_scan_id")
        var o = JSONFields(&out)
        o.bool("auto_fix", rule?.fixAction != nil, &out)
        o.string("category", rule?.category, &out)
        o.string("check_id", ruleCode, &out)
        if let shared {
            o.raw("compliance", shared.compliance, &out)
        } else {
            o.map("compliance", rule?.compliance ?? [:], &out) { FastJSON.strings($0, into: &$1) }
        }
        o.string("connection_id", try r.string("connection_id"), &out)
        o.string("cwe", rule?.cwe, &out)
        o.string("cwe_id", rule?.cwe, &out)
        if let shared { o.raw("description", shared.description, &out) } else { o.string("description", rule?.description, &out) }
        o.number("estimated_monthly_savings", r.optionalString("savings").flatMap(Double.init), &out)
        try object("evidence", as: JSONValue.self) { $0.writeJSON(into: &$1) }
        o.string("fingerprint", try r.string("fingerprint"), &out)
        o.date("first_seen_at", try r.date("first_seen_at"), &out)
        o.string("fix_action", rule?.fixAction, &out)
        o.string("id", try r.string("id"), &out)
        o.date("last_seen_at", try r.date("last_seen_at"), &out)
        o.string("provider", try r.string("provider"), &out)
        if let shared { o.raw("rationale", shared.rationale, &out) } else { o.string("rationale", rule?.rationale, &out) }
        o.string("region", try r.string("region"), &out)
        o.field("remediation", rule.map { Remediations.fill($0.remediation, row: r) }, &out) { fix, out in
            var f = JSONFields(&out)
            f.string("cli", fix.cli, &out)
            f.string("console", fix.console, &out)
            f.close(&out)
        }
        o.date("resolved_at", r.optionalDate("resolved_at"), &out)
        o.string("resource_id", try r.string("resource_id"), &out)
        o.string("resource_name", try r.string("resource_name"), &out)
        o.string("resource_type", try r.string("resource_type"), &out)
        o.string("rule_code", ruleCode, &out)
        o.string("scan_id", scanId, &out)
        o.string("scan_job_id", scanId, &out)
        o.string("service", try r.string("service"), &out)
        o.string("severity", try r.string("severity"), &out)
        o.string("status", try r.string("status"), &out)
        o.string("status_actor", r.optionalString("status_actor"), &out)
        o.date("status_expires_at", r.optionalDate("status_expires_at"), &out)
        o.string("status_reason", r.optionalString("status_reason"), &out)
        o.string("suppression_rule_id", r.optionalString("suppression_rule_id"), &out)
        try object("tags", as: String.self) { FastJSON.quote($0, into: &$1) }
        o.string("title", try r.string("title"), &out)
        o.close(&out)

        /// A jsonb object column: an empty one as it is, others decoded to be written with sorted keys.
        func object<V: Decodable>(_ k: StaticString, as: V.Type, _ value: (V, inout [UInt8]) -> Void) throws {
            let column = String(describing: k)
            if r.raw(column) == "{}" { return o.raw(k, "{}", &out) }
            o.map(k, try r.json(column) as [String: V], &out, value: value)
        }
    }
}

extension FindingEventView: JSONWritable {
    func writeJSON(into out: inout [UInt8]) {
        var o = JSONFields(&out)
        o.string("actor", actor, &out)
        o.string("connection_id", connectionId, &out)
        o.date("created_at", createdAt, &out)
        o.string("event_type", eventType, &out)
        o.string("finding_id", findingId, &out)
        o.string("from_status", fromStatus, &out)
        o.string("id", id, &out)
        o.string("reason", reason, &out)
        o.string("rule_code", ruleCode, &out)
        o.string("scan_id", scanId, &out)
        o.string("severity", severity, &out)
        o.string("to_status", toStatus, &out)
        o.close(&out)
    }
}
