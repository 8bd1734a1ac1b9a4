import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `findings.findings`, `findings.finding_events` (reads; writes go through
/// `Lifecycle`), `findings.scans` and `findings.remediation_texts` made for the API: filtered keyset
/// pages, one finding and its history, status changes, the summary, trend and coverage figures.
struct FindingStore: Sendable {
    let db: Store

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
            suppressionRuleId: r.optionalString("suppression_rule_id"), history: nil, checkId: ruleId, scanId: try r.string("last_scan_id"),
            cweId: rule?.cwe)
    }

    static func event(_ r: Row) throws -> FindingEventView {
        FindingEventView(
            id: try r.string("id"), findingId: try r.string("finding_id"), connectionId: try r.string("connection_id"),
            ruleCode: try r.string("rule_id"), severity: try r.string("severity"), eventType: try r.string("event_type"),
            fromStatus: r.optionalString("from_status"), toStatus: try r.string("to_status"), actor: r.optionalString("actor"),
            reason: r.optionalString("reason"), scanId: r.optionalString("scan_id"), createdAt: try r.date("created_at"))
    }

    /// A keyset page of `table` (findings or finding events) under the filter; the first page also
    /// carries a bounded total.
    static func list<T>(
        _ tx: Transaction, _ table: String, _ filter: Filter, _ page: SortedPage, counted: Bool, map: (Row) throws -> T
    ) async throws -> Page<T> {
        let (rows, total) = try await select(tx, table, filter, page, counted: counted)
        return try page.page(rows, total: total, map: map)
    }

    /// A keyset page cut to fit one bus message (`bytes`), each row written to JSON by `render`: see
    /// `SortedPage.page(_:total:fitting:render:)`.
    static func list<T>(
        _ tx: Transaction, _ table: String, _ filter: Filter, _ page: SortedPage, counted: Bool, fitting bytes: Int, columns: String = "*",
        render: @escaping @Sendable (Row, inout [UInt8]) throws -> Void
    ) async throws -> Page<RenderedJSON<T>> {
        let (rows, total) = try await select(tx, table, filter, page, counted: counted, columns: columns)
        return try page.page(rows, total: total, fitting: bytes, render: render)
    }

    /// The columns a listed finding is written from (`writeJSON(_:rules:into:)`) and its page sorted by.
    static let listed = """
        id, fingerprint, connection_id, rule_id, provider, service, resource_id, resource_type, resource_name, region, severity, severity_rank,
        title, status, status_reason, status_actor, status_expires_at, suppression_rule_id, evidence, tags, savings, last_scan_id, first_seen_at,
        last_seen_at, resolved_at, created_at
        """

    /// Findings, written straight from their rows (`writeJSON(_:rules:into:)`).
    static func list(
        _ tx: Transaction, _ filter: Filter, _ page: SortedPage, counted: Bool, fitting bytes: Int, rules: [String: Rule]
    ) async throws -> Page<RenderedJSON<FindingView>> {
        try await list(tx, "findings.findings", filter, page, counted: counted, fitting: bytes, columns: listed) { [rules] r, out in
            try writeJSON(r, rules: rules, into: &out)
        }
    }

    static func select(
        _ tx: Transaction, _ table: String, _ filter: Filter, _ page: SortedPage, counted: Bool, columns: String = "*"
    ) async throws -> ([Row], BoundedCount?) {
        var f = filter
        let tail = page.apply(&f)
        let rows = try await tx.query("SELECT \(columns) FROM \(table) WHERE \(f.sql)\(tail)", f.values)
        // The total is counted on the first page only: deep pages stay O(page) at any depth.
        let total = counted ? try await BoundedCount.of(tx, from: table, where: filter) : nil
        return (rows, total)
    }

    static func load(_ tx: Transaction, id: String, tenantId: String, lock: Bool) async throws -> Row? {
        try await tx.one("SELECT * FROM findings.findings WHERE id = $1 AND tenant_id = $2\(lock ? " FOR UPDATE" : "")", [id, tenantId])
    }

    /// The finding's 50 latest events, newest first.
    static func history(_ tx: Transaction, findingId: String, tenantId: String) async throws -> [FindingEventView] {
        try await tx.query(
            """
            SELECT * FROM findings.finding_events WHERE tenant_id = $1 AND finding_id = $2 ORDER BY created_at DESC, id DESC LIMIT 50
            """, [tenantId, findingId]
        ).map(event)
    }

    /// A status change made by a person (suppress, accept the risk, reopen); returns the updated row.
    static func setStatus(
        _ tx: Transaction, id: String, tenantId: String, to status: String, reason: String?, actor: String, expiresAt: Date?
    ) async throws -> Row {
        try await tx.single(
            """
            UPDATE findings.findings SET status = $3, status_reason = $4, status_actor = $5, status_expires_at = $6, suppression_rule_id = NULL,
              resolved_at = CASE WHEN $3 = 'open' THEN NULL ELSE resolved_at END, updated_at = now()
            WHERE id = $1 AND tenant_id = $2 RETURNING *
            """, [id, tenantId, status, reason, actor, expiresAt])
    }

    /// A person says the finding is resolved (a later scan that still sees it opens it again).
    static func resolveByPerson(_ tx: Transaction, id: String, tenantId: String, reason: String, actor: String) async throws -> Row {
        try await tx.single(
            """
            UPDATE findings.findings SET status = 'resolved', status_reason = $3, status_actor = $4, status_expires_at = NULL,
              suppression_rule_id = NULL, resolved_at = now(), updated_at = now()
            WHERE id = $1 AND tenant_id = $2 RETURNING *
            """, [id, tenantId, reason, actor])
    }

    /// A remediation's verified outcome: fixed (resolved) or rolled back (open again).
    static func setOutcome(_ tx: Transaction, id: String, tenantId: String, to status: String, reason: String, actor: String) async throws {
        _ = try await tx.execute(
            """
            UPDATE findings.findings SET status = $3, status_reason = $4, status_actor = $5,
              resolved_at = CASE WHEN $3 = 'resolved' THEN now() ELSE NULL END, updated_at = now()
            WHERE id = $1 AND tenant_id = $2
            """, [id, tenantId, status, reason, actor])
    }

    /// Findings counted per connection, severity and status.
    struct Cell: Sendable {
        var connectionId: String
        var service: String
        var severity: String
        var status: String
        var count: Int
        var resolvedLast30d: Int
        var openSavings: Double
    }

    static func counts(_ tx: Transaction, tenantId: String) async throws -> [Cell] {
        try await tx.query(
            """
            SELECT connection_id, service, severity, status, count(*)::int AS n,
              count(*) FILTER (WHERE status = 'resolved' AND resolved_at > now() - interval '30 days')::int AS r30,
              coalesce(sum(savings) FILTER (WHERE status = 'open'), 0)::float8 AS savings
            FROM findings.findings WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4
            """, [tenantId]
        ).map {
            Cell(
                connectionId: try $0.string("connection_id"), service: try $0.string("service"), severity: try $0.string("severity"),
                status: try $0.string("status"),
                count: try $0.int("n"), resolvedLast30d: try $0.int("r30"), openSavings: Double($0.optionalString("savings") ?? "0") ?? 0)
        }
    }

    /// Findings opened and resolved in each of the last 12 ISO weeks, oldest first, zero-filled.
    func weeks(tenantId: String) async throws -> [FindingHandlers.Week] {
        try await db.query(
            .tenant(tenantId),
            """
            WITH weeks AS (SELECT generate_series(date_trunc('week', now()) - interval '11 weeks', date_trunc('week', now()),
              interval '1 week') AS start)
            SELECT to_char(w.start, 'IYYY-"W"IW') AS week, to_char(w.start, 'YYYY-MM-DD') AS week_start,
              (SELECT count(*) FROM findings.finding_events e WHERE e.tenant_id = $1 AND e.event_type = 'opened'
                 AND e.created_at >= w.start AND e.created_at < w.start + interval '1 week')::int AS opened,
              (SELECT count(*) FROM findings.finding_events e WHERE e.tenant_id = $1 AND e.event_type = 'resolved'
                 AND e.created_at >= w.start AND e.created_at < w.start + interval '1 week')::int AS resolved
            FROM weeks w ORDER BY w.start
            """, [tenantId]
        ).map {
            FindingHandlers.Week(
                week: try $0.string("week"), weekStart: try $0.string("week_start"), opened: try $0.int("opened"), resolved: try $0.int("resolved"))
        }
    }

    /// Each connection's latest completed scan with its check counts and open findings.
    static func latestScans(_ tx: Transaction, tenantId: String) async throws -> [FindingHandlers.ConnectionCoverage] {
        try await tx.query(
            """
            SELECT DISTINCT ON (s.connection_id) s.connection_id, s.scan_id, s.completed_at, s.complete, s.resources, s.parts,
              (SELECT coalesce(sum(passed), 0)::int FROM findings.rule_counts rc WHERE rc.tenant_id = $1 AND rc.scan_id = s.scan_id) AS passed,
              (SELECT coalesce(sum(failed), 0)::int FROM findings.rule_counts rc WHERE rc.tenant_id = $1 AND rc.scan_id = s.scan_id) AS failed,
              (SELECT count(DISTINCT rule_id)::int FROM findings.rule_counts rc WHERE rc.tenant_id = $1 AND rc.scan_id = s.scan_id) AS rules,
              (SELECT count(*)::int FROM findings.findings f WHERE f.tenant_id = $1 AND f.connection_id = s.connection_id
                AND f.status = 'open') AS open
            FROM findings.scans s WHERE s.tenant_id = $1 AND s.status = 'completed'
            ORDER BY s.connection_id, s.completed_at DESC
            """, [tenantId]
        ).map { r in
            let passed = try r.int("passed")
            let failed = try r.int("failed")
            let parts: [ScanPartReport] = try r.json("parts")
            return FindingHandlers.ConnectionCoverage(
                connectionId: try r.string("connection_id"), lastScanId: try r.string("scan_id"), lastScanAt: try r.date("completed_at"),
                complete: try r.bool("complete"), resourcesScanned: try r.int("resources"), checksEvaluated: passed + failed,
                checksPassed: passed, checksFailed: failed, rulesEvaluated: try r.int("rules"),
                passRate: passed + failed == 0 ? 0 : (Double(passed) / Double(passed + failed) * 1000).rounded() / 1000,
                servicesCovered: Array(Set(parts.filter { $0.status == "completed" }.map(\.service))).sorted(),
                openFindings: try r.int("open"))
        }
    }

    static func cachedGuide(_ tx: Transaction, findingId: String, tenantId: String) async throws -> RemediationGuide? {
        try await tx.one("SELECT content FROM findings.remediation_texts WHERE tenant_id = $1 AND finding_id = $2", [tenantId, findingId])
            .map { try $0.json("content") }
    }

    static func saveGuide(_ tx: Transaction, _ guide: RemediationGuide, findingId: String, tenantId: String) async throws {
        _ = try await tx.query(
            "INSERT INTO findings.remediation_texts (tenant_id, finding_id, content) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING",
            [tenantId, findingId, try JSONParameter(guide)])
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
        return try assemble(try visible.map(map), of: visible, more: rows.count > limit, total: total)
    }

    /// A page whose JSON fits in `bytes` (one bus message): the rows are rendered (`render`, in one part
    /// per core) and left off its end once they would not fit; the cursor resumes after the last one kept.
    func page<T>(
        _ rows: [Row], total: BoundedCount?, fitting bytes: Int, render: @Sendable (Row, inout [UInt8]) throws -> Void
    ) throws -> Page<RenderedJSON<T>> {
        let visible = Array(rows.prefix(limit))
        let items = try Parallel.map(visible) { r in
            var json = [UInt8]()
            json.reserveCapacity(1536)
            try render(r, &json)
            return RenderedJSON<T>(bytes: json)
        }
        var used = 256  // the page's own fields
        var kept = 0
        for item in items {
            used += item.bytes.count + 1
            if used > bytes && kept > 0 { break }
            kept += 1
        }
        return try assemble(Array(items.prefix(kept)), of: visible, more: rows.count > limit || kept < items.count, total: total)
    }

    /// The page of `items` (the first of `visible`), its cursor after the last of them when `more` follow.
    private func assemble<T>(_ items: [T], of visible: [Row], more: Bool, total: BoundedCount?) throws -> Page<T> {
        Page(
            items: items, nextCursor: more && !items.isEmpty ? try cursor(after: visible[items.count - 1]) : nil, total: total?.count,
            totalCapped: total?.capped == true ? true : nil)
    }

    func cursor(after last: Row) throws -> String {
        let value = column == "resolved_at" ? (last.optionalString("resolved_at") ?? "1970-01-01 00:00:00+00") : try last.string(column)
        return Data("\(sortKey)|\(value)|\(try last.string("id"))".utf8).base64EncodedString()
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
