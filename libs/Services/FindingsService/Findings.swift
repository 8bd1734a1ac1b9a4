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
    var connectionId: String?
    var scanJobId: String?
    var autoFixOnly: Bool?
    var search: String?
    var sortBy: String?
}
struct FindingPath: Codable, Sendable { var findingId: String }
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
    var findingId: String?
    var severity: String?
    var eventType: String?
    var start: String?
    var end: String?
}

enum FindingRows {
    static func view(_ r: Row, rules: [String: Rule]) throws -> FindingView {
        let ruleId = try r.string("rule_id")
        let rule = rules[ruleId]
        return FindingView(
            id: try r.string("id"), fingerprint: try r.string("fingerprint"), ruleCode: ruleId, title: try r.string("title"),
            severity: try r.string("severity"), status: try r.string("status"), provider: try r.string("provider"),
            service: try r.string("service"), resourceId: try r.string("resource_id"), resourceType: try r.string("resource_type"),
            resourceName: try r.string("resource_name"), region: try r.string("region"), connectionId: try r.string("connection_id"),
            scanJobId: try r.string("last_scan_id"), category: rule?.category, description: rule?.description, rationale: rule?.rationale,
            remediation: rule.map { Remediations.fill($0.remediation, row: r) }, cwe: rule?.cwe,
            evidence: try r.json("evidence"), compliance: rule?.compliance ?? [:],
            estimatedMonthlySavings: r.optionalString("savings").flatMap(Double.init), autoFix: rule?.fixAction != nil,
            fixAction: rule?.fixAction, tags: try r.json("tags"), firstSeenAt: try r.date("first_seen_at"),
            lastSeenAt: try r.date("last_seen_at"), resolvedAt: r.optionalDate("resolved_at"), statusReason: r.optionalString("status_reason"),
            statusActor: r.optionalString("status_actor"), statusExpiresAt: r.optionalDate("status_expires_at"),
            suppressionRuleId: r.optionalString("suppression_rule_id"), history: nil)
    }

    static func event(_ r: Row) throws -> FindingEventView {
        FindingEventView(
            id: try r.string("id"), findingId: try r.string("finding_id"), connectionId: try r.string("connection_id"),
            ruleCode: try r.string("rule_id"), severity: try r.string("severity"), eventType: try r.string("event_type"),
            fromStatus: r.optionalString("from_status"), toStatus: try r.string("to_status"), actor: r.optionalString("actor"),
            reason: r.optionalString("reason"), scanId: r.optionalString("scan_id"), createdAt: try r.date("created_at"))
    }
}

/// Comma lists and other query values, validated into SQL conditions.
struct Filter {
    var sql = "tenant_id = $1"
    var values: [any SQLParameter]
    init(tenant: String) { values = [tenant] }

    mutating func add(_ condition: (Int) -> String, _ value: any SQLParameter) {
        values.append(value)
        sql += " AND " + condition(values.count)
    }

    static func uuid(_ s: String?, path: String) throws -> String? {
        guard let s else { return nil }
        guard ID.isValid(s) else { throw ServiceError.validation(path, "must be a UUID") }
        return s.lowercased()
    }

    static func date(_ s: String?, path: String) throws -> Date? {
        guard let s else { return nil }
        if let d = Timestamp.parse(s) { return d }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd"
        if let d = f.date(from: s) { return d }
        throw ServiceError.validation(path, "must be an ISO 8601 date or date-time")
    }
}

/// Keyset pagination over one sort column and the id (stable while rows are inserted).
struct SortedPage {
    let column: String
    let descending: Bool
    let limit: Int
    let offset: Int?
    let after: (String, String)?
    static let sorts: [String: (String, Bool)] = [
        "created_at": ("created_at", true), "first_seen_at": ("first_seen_at", true),
        "last_seen_at": ("last_seen_at", true), "severity": ("severity_rank", false),
        "resolved_at": ("resolved_at", true),
    ]

    init(sortBy: String?, limit: Int?, cursor: String?, offset: Int?) throws {
        let key = sortBy ?? "created_at"
        guard let (c, d) = Self.sorts[key] else {
            throw ServiceError.validation("query.sort_by", "must be one of \(Self.sorts.keys.sorted().joined(separator: ", "))")
        }
        column = c
        descending = d
        let l = limit ?? 50
        guard (1...500).contains(l) else { throw ServiceError.validation("query.limit", "must be between 1 and 500") }
        self.limit = l
        if let o = offset, o < 0 { throw ServiceError.validation("query.offset", "must be 0 or more") }
        self.offset = offset
        if let cursor {
            guard let raw = Data(base64Encoded: cursor), let s = String(data: raw, encoding: .utf8), let bar = s.lastIndex(of: "|"),
                ID.isValid(String(s[s.index(after: bar)...])), s.hasPrefix(key + "|")
            else {
                throw ServiceError.validation("query.cursor", "is not a cursor from this list")
            }
            let value = String(s[s.index(s.startIndex, offsetBy: key.count + 1)..<bar])
            after = (value, String(s[s.index(after: bar)...]))
        } else {
            after = nil
        }
        sortKey = key
    }
    let sortKey: String

    func apply(_ f: inout Filter) -> String {
        let nullsLast = column == "resolved_at" ? "coalesce(\(column), 'epoch')" : column
        if let (v, id) = after {
            let cast = column == "severity_rank" ? "int" : "timestamptz"
            f.values.append(v)
            let a = f.values.count
            f.values.append(id)
            let b = f.values.count
            f.sql += " AND (\(nullsLast), id) \(descending ? "<" : ">") ($\(a)::\(cast), $\(b)::uuid)"
        }
        let dir = descending ? "DESC" : "ASC"
        return " ORDER BY \(nullsLast) \(dir), id \(dir) LIMIT \(limit + 1)" + (after == nil && offset != nil ? " OFFSET \(offset!)" : "")
    }

    func page<T>(_ rows: [Row], total: BoundedCount?, map: (Row) throws -> T) throws -> Page<T> {
        let visible = Array(rows.prefix(limit))
        var next: String? = nil
        if rows.count > limit, let last = visible.last {
            let value = column == "resolved_at" ? (last.optionalString("resolved_at") ?? "1970-01-01 00:00:00+00") : try last.string(column)
            next = Data("\(sortKey)|\(value)|\(try last.string("id"))".utf8).base64EncodedString()
        }
        return Page(items: try visible.map(map), nextCursor: next, total: total?.count, totalCapped: total?.capped == true ? true : nil)
    }
}

/// The total of a first page, counted up to `cap` matching rows: an exact count of a million
/// findings takes hundreds of milliseconds (10,000 rows about 8), a page must stay within a few.
/// Exact counts by status and severity are in the summary.
struct BoundedCount {
    static let cap = 1_000
    var count: Int
    var capped: Bool

    static func of(_ tx: Transaction, from table: String, where filter: Filter) async throws -> BoundedCount {
        let n =
            try await tx.one("SELECT count(*) AS n FROM (SELECT 1 FROM \(table) WHERE \(filter.sql) LIMIT \(cap + 1)) x", filter.values)?.int("n")
            ?? 0
        return BoundedCount(count: min(n, cap), capped: n > cap)
    }
}

struct FindingHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog
    static let statuses = ["open", "resolved", "suppressed", "accepted_risk"]
    static let eventTypes = ["opened", "resolved", "reopened", "suppressed", "accepted_risk", "expired"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<FindingListRequest, Page<FindingView>>(Subjects.Findings.findingList), handler: list)
        r.add(Endpoint<FindingPath, FindingView>(Subjects.Findings.findingGet), handler: get)
        r.add(Endpoint<Empty, Summary>(Subjects.Findings.findingSummary), handler: summary)
        r.add(Endpoint<Empty, Trend>(Subjects.Findings.findingResolutionTrend), handler: trend)
        r.add(Endpoint<Empty, Coverage>(Subjects.Findings.findingCoverageSummary), handler: coverage)
        r.add(Endpoint<StatusChange, FindingView>(Subjects.Findings.findingSuppress)) { try await change($0, $1, to: "suppressed") }
        r.add(Endpoint<StatusChange, FindingView>(Subjects.Findings.findingAcceptRisk)) { try await change($0, $1, to: "accepted_risk") }
        r.add(Endpoint<StatusChange, FindingView>(Subjects.Findings.findingReopen)) { try await change($0, $1, to: "open") }
        r.add(Endpoint<FindingPath, RemediationGuide>(Subjects.Findings.findingAiRemediation), handler: remediation)
        r.add(Endpoint<EventListRequest, Page<FindingEventView>>(Subjects.Findings.eventList), handler: events)
    }

    @Sendable func list(_ q: FindingListRequest, _ ctx: CallContext) async throws -> Page<FindingView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        var f = Filter(tenant: p.tenantId)
        if let s = try Validate.list(q.severity, path: "query.severity", allowed: severityNames) {
            f.add({ "severity = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let s = try Validate.list(q.status, path: "query.status", allowed: Self.statuses) {
            f.add({ "status = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let s = try Validate.list(q.provider, path: "query.provider", allowed: ["aws"]) {
            f.add({ "provider = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let s = try Validate.list(q.ruleCode, path: "query.rule_code", lower: false) {
            f.add({ "rule_id = ANY($\($0)::text[])" }, ArrayParameter(s))
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
        let page = try SortedPage(sortBy: q.sortBy, limit: q.limit, cursor: q.cursor, offset: q.offset)
        return try await store.transaction(p.scope) { tx in
            let rules = try await catalog.rulesById(tx, tenantId: p.tenantId)
            if q.autoFixOnly == true {
                let fixable = rules.values.filter { $0.fixAction != nil }.map(\.id)
                f.add({ "rule_id = ANY($\($0)::text[])" }, ArrayParameter(fixable))
            }
            let countFilter = f
            let tail = page.apply(&f)
            let rows = try await tx.query("SELECT * FROM findings.findings WHERE \(f.sql)\(tail)", f.values)
            // The total is counted on the first page only: deep pages stay O(page) at any depth.
            let total = q.cursor != nil ? nil : try await BoundedCount.of(tx, from: "findings.findings", where: countFilter)
            return try page.page(rows, total: total) { try FindingRows.view($0, rules: rules) }
        }
    }

    func load(_ tx: Transaction, _ p: Principal, _ rawId: String, lock: Bool = false) async throws -> Row {
        let id = try Validate.id(rawId, "finding")
        guard
            let row = try await tx.one(
                "SELECT * FROM findings.findings WHERE id = $1 AND tenant_id = $2\(lock ? " FOR UPDATE" : "")",
                [id, p.tenantId])
        else { throw ServiceError.notFound("finding") }
        return row
    }

    @Sendable func get(_ q: FindingPath, _ ctx: CallContext) async throws -> FindingView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        return try await store.transaction(p.scope) { tx in
            var view = try FindingRows.view(try await load(tx, p, q.findingId), rules: try await catalog.rulesById(tx, tenantId: p.tenantId))
            view.history = try await tx.query(
                """
                SELECT * FROM findings.finding_events WHERE tenant_id = $1 AND finding_id = $2 ORDER BY created_at DESC, id DESC LIMIT 50
                """, [p.tenantId, view.id]
            ).map(FindingRows.event)
            return view
        }
    }

    @Sendable func change(_ q: StatusChange, _ ctx: CallContext, to target: String) async throws -> FindingView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .analyst)
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
            let updated = try await tx.one(
                """
                UPDATE findings.findings SET status = $3, status_reason = $4, status_actor = $5, status_expires_at = $6, suppression_rule_id = NULL,
                  resolved_at = CASE WHEN $3 = 'open' THEN NULL ELSE resolved_at END, updated_at = now()
                WHERE id = $1 AND tenant_id = $2 RETURNING *
                """, [try row.string("id"), p.tenantId, target, reason, p.actorId, expires])!
            try await Lifecycle.record(
                tx, tenantId: p.tenantId,
                [
                    Transition(
                        findingId: try row.string("id"), connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
                        severity: try row.string("severity"), eventType: target == "open" ? "reopened" : target, from: current, to: target,
                        actor: p.actorId, reason: reason, scanId: nil, resourceId: try row.string("resource_id"), title: try row.string("title"))
                ])
            return try FindingRows.view(updated, rules: try await catalog.rulesById(tx, tenantId: p.tenantId))
        }
    }

    @Sendable func events(_ q: EventListRequest, _ ctx: CallContext) async throws -> Page<FindingEventView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        var f = Filter(tenant: p.tenantId)
        if let c = try Filter.uuid(q.connectionId, path: "query.connection_id") { f.add({ "connection_id = $\($0)" }, c) }
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
        let page = try SortedPage(sortBy: nil, limit: q.limit, cursor: q.cursor, offset: q.offset)
        return try await store.transaction(p.scope) { tx in
            let countFilter = f
            let tail = page.apply(&f)
            let rows = try await tx.query("SELECT * FROM findings.finding_events WHERE \(f.sql)\(tail)", f.values)
            let total = q.cursor != nil ? nil : try await BoundedCount.of(tx, from: "findings.finding_events", where: countFilter)
            return try page.page(rows, total: total, map: FindingRows.event)
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
        var byConnection: [String: ConnectionCounts]
        enum CodingKeys: String, CodingKey {
            case total, open, bySeverity, byStatus, openBySeverity, estimatedMonthlySavings, byConnection
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

    @Sendable func summary(_ q: Empty, _ ctx: CallContext) async throws -> Summary {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        return try await store.transaction(p.scope) { tx in
            var s = Summary(
                total: 0, open: 0, bySeverity: Dictionary(uniqueKeysWithValues: severityNames.map { ($0, 0) }),
                byStatus: Dictionary(uniqueKeysWithValues: Self.statuses.map { ($0, 0) }),
                openBySeverity: Dictionary(uniqueKeysWithValues: severityNames.map { ($0, 0) }),
                totalResolvedLast30d: 0, estimatedMonthlySavings: 0, byConnection: [:])
            for row in try await tx.query(
                """
                SELECT connection_id, severity, status, count(*)::int AS n,
                  count(*) FILTER (WHERE status = 'resolved' AND resolved_at > now() - interval '30 days')::int AS r30,
                  coalesce(sum(savings) FILTER (WHERE status = 'open'), 0)::float8 AS savings
                FROM findings.findings WHERE tenant_id = $1 GROUP BY 1, 2, 3
                """, [p.tenantId])
            {
                let n = try row.int("n")
                let sev = try row.string("severity")
                let st = try row.string("status")
                let r30 = try row.int("r30")
                let conn = try row.string("connection_id")
                s.total += n
                s.bySeverity[sev, default: 0] += n
                s.byStatus[st, default: 0] += n
                if st == "open" {
                    s.open += n
                    s.openBySeverity[sev, default: 0] += n
                }
                s.totalResolvedLast30d += r30
                s.estimatedMonthlySavings += Double(row.optionalString("savings") ?? "0") ?? 0
                var c = s.byConnection[conn] ?? ConnectionCounts(open: 0, resolvedLast30d: 0)
                if st == "open" { c.open += n }
                c.resolvedLast30d += r30
                s.byConnection[conn] = c
            }
            s.estimatedMonthlySavings = (s.estimatedMonthlySavings * 100).rounded() / 100
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
    @Sendable func trend(_ q: Empty, _ ctx: CallContext) async throws -> Trend {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        let rows = try await store.query(
            p.scope,
            """
            WITH weeks AS (SELECT generate_series(date_trunc('week', now()) - interval '11 weeks', date_trunc('week', now()),
              interval '1 week') AS start)
            SELECT to_char(w.start, 'IYYY-"W"IW') AS week, to_char(w.start, 'YYYY-MM-DD') AS week_start,
              (SELECT count(*) FROM findings.finding_events e WHERE e.tenant_id = $1 AND e.event_type = 'opened'
                 AND e.created_at >= w.start AND e.created_at < w.start + interval '1 week')::int AS opened,
              (SELECT count(*) FROM findings.finding_events e WHERE e.tenant_id = $1 AND e.event_type = 'resolved'
                 AND e.created_at >= w.start AND e.created_at < w.start + interval '1 week')::int AS resolved
            FROM weeks w ORDER BY w.start
            """, [p.tenantId])
        return Trend(
            weeks: try rows.map {
                Week(
                    week: try $0.string("week"), weekStart: try $0.string("week_start"),
                    opened: try $0.int("opened"), resolved: try $0.int("resolved"))
            })
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

    @Sendable func coverage(_ q: Empty, _ ctx: CallContext) async throws -> Coverage {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        return try await store.transaction(p.scope) { tx in
            let rows = try await tx.query(
                """
                SELECT DISTINCT ON (s.connection_id) s.connection_id, s.scan_id, s.completed_at, s.complete, s.resources, s.parts,
                  (SELECT coalesce(sum(passed), 0)::int FROM findings.rule_counts rc WHERE rc.tenant_id = $1 AND rc.scan_id = s.scan_id) AS passed,
                  (SELECT coalesce(sum(failed), 0)::int FROM findings.rule_counts rc WHERE rc.tenant_id = $1 AND rc.scan_id = s.scan_id) AS failed,
                  (SELECT count(DISTINCT rule_id)::int FROM findings.rule_counts rc WHERE rc.tenant_id = $1 AND rc.scan_id = s.scan_id) AS rules,
                  (SELECT count(*)::int FROM findings.findings f WHERE f.tenant_id = $1 AND f.connection_id = s.connection_id
                    AND f.status = 'open') AS open
                FROM findings.scans s WHERE s.tenant_id = $1 AND s.status = 'completed'
                ORDER BY s.connection_id, s.completed_at DESC
                """, [p.tenantId])
            var out: [ConnectionCoverage] = []
            for r in rows {
                let passed = try r.int("passed")
                let failed = try r.int("failed")
                let parts: [ScanPartReport] = try r.json("parts")
                out.append(
                    ConnectionCoverage(
                        connectionId: try r.string("connection_id"), lastScanId: try r.string("scan_id"), lastScanAt: try r.date("completed_at"),
                        complete: try r.bool("complete"), resourcesScanned: try r.int("resources"), checksEvaluated: passed + failed,
                        checksPassed: passed, checksFailed: failed, rulesEvaluated: try r.int("rules"),
                        passRate: passed + failed == 0 ? 0 : (Double(passed) / Double(passed + failed) * 1000).rounded() / 1000,
                        servicesCovered: Array(Set(parts.filter { $0.status == "completed" }.map(\.service))).sorted(),
                        openFindings: try r.int("open")))
            }
            let checks = out.reduce(0) { $0 + $1.checksEvaluated }
            let passed = out.reduce(0) { $0 + $1.checksPassed }
            return Coverage(
                connections: out, totalResources: out.reduce(0) { $0 + $1.resourcesScanned }, totalChecks: checks,
                passRate: checks == 0 ? 0 : (Double(passed) / Double(checks) * 1000).rounded() / 1000,
                rulesAvailable: try await catalog.rules(tx, tenantId: p.tenantId).filter { $0.enabled ?? true }.count)
        }
    }

    @Sendable func remediation(_ q: FindingPath, _ ctx: CallContext) async throws -> RemediationGuide {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        return try await store.transaction(p.scope) { tx in
            let row = try await load(tx, p, q.findingId)
            let id = try row.string("id")
            if let cached = try await tx.one(
                "SELECT content FROM findings.remediation_texts WHERE tenant_id = $1 AND finding_id = $2", [p.tenantId, id])
            {
                var guide: RemediationGuide = try cached.json("content")
                guide.cached = true
                return guide
            }
            let rules = try await catalog.rulesById(tx, tenantId: p.tenantId)
            guard let rule = rules[try row.string("rule_id")] else {
                throw ServiceError.conflict("the finding's rule no longer exists", code: "rule_missing")
            }
            let guide = Remediations.guide(rule: rule, row: row)
            _ = try await tx.query(
                "INSERT INTO findings.remediation_texts (tenant_id, finding_id, content) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING",
                [p.tenantId, id, try JSONParameter(guide)])
            return guide
        }
    }
}

// List pages carry up to 200 findings: written directly (keys snake_case and sorted, as
// `JSON.encode` would), since JSONEncoder spent most of a page's time converting keys.
extension FindingView: JSONWritable {
    func writeJSON(into out: inout String) {
        var o = JSONFields(capacity: 1536)
        o.bool("auto_fix", autoFix)
        o.string("category", category)
        o.map("compliance", compliance) { FastJSON.strings($0, into: &$1) }
        o.string("connection_id", connectionId)
        o.string("cwe", cwe)
        o.string("description", description)
        o.number("estimated_monthly_savings", estimatedMonthlySavings)
        o.map("evidence", evidence) { $0.writeJSON(into: &$1) }
        o.string("fingerprint", fingerprint)
        o.date("first_seen_at", firstSeenAt)
        o.string("fix_action", fixAction)
        o.array("history", history)
        o.string("id", id)
        o.date("last_seen_at", lastSeenAt)
        o.string("provider", provider)
        o.string("rationale", rationale)
        o.string("region", region)
        o.field("remediation", remediation) { r, out in
            var f = JSONFields(capacity: 256)
            f.string("cli", r.cli)
            f.string("console", r.console)
            f.close(into: &out)
        }
        o.date("resolved_at", resolvedAt)
        o.string("resource_id", resourceId)
        o.string("resource_name", resourceName)
        o.string("resource_type", resourceType)
        o.string("rule_code", ruleCode)
        o.string("scan_job_id", scanJobId)
        o.string("service", service)
        o.string("severity", severity)
        o.string("status", status)
        o.string("status_actor", statusActor)
        o.date("status_expires_at", statusExpiresAt)
        o.string("status_reason", statusReason)
        o.string("suppression_rule_id", suppressionRuleId)
        o.map("tags", tags) { FastJSON.quote($0, into: &$1) }
        o.string("title", title)
        o.close(into: &out)
    }
}

extension FindingEventView: JSONWritable {
    func writeJSON(into out: inout String) {
        var o = JSONFields(capacity: 512)
        o.string("actor", actor)
        o.string("connection_id", connectionId)
        o.date("created_at", createdAt)
        o.string("event_type", eventType)
        o.string("finding_id", findingId)
        o.string("from_status", fromStatus)
        o.string("id", id)
        o.string("reason", reason)
        o.string("rule_code", ruleCode)
        o.string("scan_id", scanId)
        o.string("severity", severity)
        o.string("to_status", toStatus)
        o.close(into: &out)
    }
}
