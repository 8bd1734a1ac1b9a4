import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct ReportGenerate: Codable, Sendable {
    var type: String?
    /// `?report_type=` (the reference's way, with no body).
    var reportType: String?
    var format: String?
    var frameworkId: String?
    var title: String?
    var filters: ReportFilters?
}
struct ReportListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var reportType: String?
}
struct ReportFilters: Codable, Sendable {
    var severity: String?
    var status: String?
    var connectionId: String?
}
struct ReportView: Codable, Sendable {
    var id: String
    var type: String
    var format: String
    var title: String
    var status: String
    var size: Int?
    var contentType: String?
    var createdAt: Date
    var completedAt: Date?
    var downloadUrl: String
    var parameters: [String: JSONValue]
}
struct ReportPath: Codable, Sendable { var reportId: String }

/// Reports: executive summary, compliance report and findings export as JSON, CSV, HTML or PDF; the
/// findings export also as SARIF 2.1.0 and OCSF Detection Finding JSON. Generated at request time and
/// stored, so a download returns exactly what was generated.
struct ReportHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog
    static let types = ["executive_summary", "compliance", "findings_export"]
    static let formats = ["json", "csv", "html", "pdf", "sarif", "ocsf"]
    static let contentTypes = [
        "json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
        "pdf": "application/pdf", "sarif": "application/sarif+json", "ocsf": "application/json",
    ]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<ReportGenerate, ReportView>(Subjects.Findings.reportGenerate), handler: generate)
        r.add(Endpoint<ReportListRequest, Page<ReportView>>(Subjects.Findings.reportList)) { q, p, ctx in
            let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
            let type = try Validate.list(q.reportType, path: "query.report_type", allowed: Self.types)?.first
            return try await ReportStore(db: store).list(page, tenantId: p.tenantId, type: type, map: Self.view)
        }
        r.add(Endpoint<ReportPath, ReportView>(Subjects.Findings.reportGet)) { q, p, ctx in
            return try Self.view(try await load(p, q.reportId, content: false))
        }
        r.add(Endpoint<ReportPath, FileReply>(Subjects.Findings.reportDownload)) { q, p, ctx in
            let row = try await load(p, q.reportId, content: true)
            let ext = try row.string("format") == "sarif" ? "sarif" : try row.string("format") == "ocsf" ? "ocsf.json" : try row.string("format")
            return FileReply(
                contentType: try row.string("content_type"), filename: "vigil-\(try row.string("type"))-\(try row.string("id").prefix(8)).\(ext)",
                contentBase64: try row.bytes("content").base64EncodedString())
        }
    }

    func load(_ p: Principal, _ raw: String, content: Bool) async throws -> Row {
        let id = try Validate.id(raw, "report")
        guard let row = try await ReportStore(db: store).load(id: id, tenantId: p.tenantId, content: content)
        else { throw ServiceError.notFound("report") }
        return row
    }

    static func view(_ r: Row) throws -> ReportView {
        ReportView(
            id: try r.string("id"), type: try r.string("type"), format: try r.string("format"), title: try r.string("title"),
            status: try r.string("status"), size: r.optionalInt("size"), contentType: r.optionalString("content_type"),
            createdAt: try r.date("created_at"), completedAt: r.optionalDate("completed_at"),
            downloadUrl: "/api/v1/reports/\(try r.string("id"))/download", parameters: try r.json("parameters"))
    }

    @Sendable func generate(_ q: ReportGenerate, _ p: Principal, _ ctx: CallContext) async throws -> ReportView {
        var issues: [ValidationIssue] = []
        let type = q.type ?? q.reportType ?? ""
        let format = q.format ?? "json"
        if !Self.types.contains(type) { issues.append(.init(path: "body.type", message: "must be one of \(Self.types.joined(separator: ", "))")) }
        if !Self.formats.contains(format) {
            issues.append(.init(path: "body.format", message: "must be one of \(Self.formats.joined(separator: ", "))"))
        }
        if ["sarif", "ocsf"].contains(format) && type != "findings_export" {
            issues.append(.init(path: "body.format", message: "\(format) is available for findings_export only"))
        }
        if let f = q.frameworkId, !frameworks.contains(where: { $0.id == f }) {
            issues.append(.init(path: "body.framework_id", message: "must be one of \(frameworks.map(\.id).joined(separator: ", "))"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let severities = try Validate.list(q.filters?.severity, path: "body.filters.severity", allowed: severityNames)
        let statuses = try Validate.list(q.filters?.status, path: "body.filters.status", allowed: FindingHandlers.statuses)
        let connection = try Filter.uuid(q.filters?.connectionId, path: "body.filters.connection_id")
        let title = try Validate.text(q.title ?? type.replacingOccurrences(of: "_", with: " ").capitalized, path: "body.title", max: 200)
        let id = ID.make()
        var params: [String: JSONValue] = [:]
        if let f = q.frameworkId { params["framework_id"] = .string(f) }
        if let s = severities { params["severity"] = .array(s.map { .string($0) }) }
        if let s = statuses { params["status"] = .array(s.map { .string($0) }) }
        if let c = connection { params["connection_id"] = .string(c) }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let rules = try await catalog.rulesById(tx, tenantId: p.tenantId)
            let content: Data
            switch type {
            case "findings_export":
                var f = Filter(tenant: p.tenantId)
                if let s = severities { f.add({ "severity = ANY($\($0)::text[])" }, ArrayParameter(s)) }
                if let s = statuses { f.add({ "status = ANY($\($0)::text[])" }, ArrayParameter(s)) }
                if let c = connection { f.add({ "connection_id = $\($0)" }, c) }
                let findings = try await ReportStore.findings(tx, f).map { try FindingStore.view($0, rules: rules) }
                content = try Self.render(findings: findings, format: format, title: title, rules: rules)
            case "compliance":
                let handlers = ComplianceHandlers(store: store, catalog: catalog)
                let chosen = frameworks.filter { q.frameworkId == nil || $0.id == q.frameworkId }
                let score = try await handlers.score(tx, p.tenantId, connection: connection)
                var details: [FrameworkDetail] = []
                for fw in chosen { details.append(try await handlers.detail(tx, p.tenantId, fw, connection: connection)) }
                content = try Self.render(compliance: ComplianceReport(score: score, frameworks: details), format: format, title: title)
            default:
                content = try await Self.executive(tx, p.tenantId, format: format, title: title, catalog: catalog, store: store)
            }
            let row = try await ReportStore.insert(
                tx, tenantId: p.tenantId,
                .init(
                    id: id, type: type, format: format, title: title, parameters: params, content: content, contentType: Self.contentTypes[format]!,
                    createdBy: p.actorId))
            try await tx.emit(
                Events.reportGenerated, tenantId: p.tenantId,
                data: ["report_id": id, "type": type, "format": format, "actor": p.actorId])
            return try Self.view(row)
        }
    }

    static func stamp() -> String { "Generated by Vigil on \(Timestamp.format(Date()))" }

    static func render(findings: [FindingView], format: String, title: String, rules: [String: Rule]) throws -> Data {
        switch format {
        case "json": return try JSON.encode(ListOf(items: findings))
        case "sarif": return try JSONSerialization.data(withJSONObject: sarif(findings, rules: rules), options: [.sortedKeys])
        case "ocsf": return try JSONSerialization.data(withJSONObject: findings.map(ocsf), options: [.sortedKeys])
        default:
            let table = Document.Table(
                header: [
                    "id", "severity", "status", "rule", "title", "resource", "region", "connection", "first_seen", "last_seen",
                    "monthly_savings",
                ],
                rows: findings.map {
                    [
                        $0.id, $0.severity, $0.status, $0.ruleCode, $0.title, $0.resourceId, $0.region, $0.connectionId,
                        Timestamp.format($0.firstSeenAt), Timestamp.format($0.lastSeenAt),
                        $0.estimatedMonthlySavings.map { String(format: "%.2f", $0) } ?? "",
                    ]
                })
            let doc = Document(
                title: title, subtitle: stamp() + " — \(findings.count) findings", sections: [.init(heading: "Findings", table: table)])
            return output(doc, format)
        }
    }

    static func output(_ d: Document, _ format: String) -> Data {
        switch format {
        case "csv": return Data(d.csv().utf8)
        case "html": return Data(d.html().utf8)
        default: return d.pdf()
        }
    }

    static func render(compliance r: ComplianceReport, format: String, title: String) throws -> Data {
        if format == "json" { return try JSON.encode(r) }
        var sections: [Document.Section] = [
            .init(
                heading: "Scores",
                paragraphs: [
                    "Overall: \(r.score.overall.score)% of assessed controls pass (\(r.score.overall.passed) of \(r.score.overall.assessed))."
                ],
                table: .init(
                    header: ["framework", "score %", "passed", "failed", "not assessed"],
                    rows: r.score.frameworks.map { [$0.name, String($0.score), String($0.passed), String($0.failed), String($0.notAssessed)] }))
        ]
        for f in r.frameworks {
            sections.append(
                .init(
                    heading: "\(f.framework.name) \(f.framework.version)", paragraphs: ["Score \(f.score.score)%."],
                    table: .init(
                        header: ["control", "status", "rules", "failing resources"],
                        rows: f.controls.map { c in
                            [
                                c.controlId, c.status, c.rules.map(\.ruleId).joined(separator: " "),
                                c.failingResources.prefix(10).map(\.resourceName).joined(separator: " "),
                            ]
                        })))
        }
        return output(Document(title: title, subtitle: stamp(), sections: sections), format)
    }

    static func executive(_ tx: Transaction, _ tenant: String, format: String, title: String, catalog: RuleCatalog, store: Store) async throws -> Data
    {
        var bySeverity: [String: Int] = [:]
        var byStatus: [String: Int] = [:]
        var savings = 0.0
        for t in try await ReportStore.totals(tx, tenantId: tenant) {
            if t.status == "open" { bySeverity[t.severity, default: 0] += t.count }
            byStatus[t.status, default: 0] += t.count
            savings += t.savings
        }
        let top = try await ReportStore.topRisks(tx, tenantId: tenant)
        let score = try await ComplianceHandlers(store: store, catalog: catalog).score(tx, tenant, connection: nil)
        let byService = try await ReportStore.savingsByService(tx, tenantId: tenant)
        let topSavings = try await ReportStore.topSavings(tx, tenantId: tenant)
        if format == "json" {
            struct Exec: Encodable {
                var savingsByService: [String: Double]
                var topSavings: [[String]]
                var title: String
                var generatedAt: Date
                var openBySeverity: [String: Int]
                var byStatus: [String: Int]
                var estimatedMonthlySavings: Double
                var topRisks: [[String]]
                var compliance: ComplianceScore
            }
            return try JSON.encode(
                Exec(
                    savingsByService: Dictionary(uniqueKeysWithValues: byService.map { ($0.service, ($0.usd * 100).rounded() / 100) }),
                    topSavings: topSavings, title: title, generatedAt: Date(), openBySeverity: bySeverity, byStatus: byStatus,
                    estimatedMonthlySavings: (savings * 100).rounded() / 100, topRisks: top, compliance: score))
        }
        let open = bySeverity.values.reduce(0, +)
        let doc = Document(
            title: title, subtitle: stamp(),
            sections: [
                .init(
                    heading: "At a glance",
                    paragraphs: [
                        "\(open) open findings: " + severityNames.map { "\(bySeverity[$0] ?? 0) \($0)" }.joined(separator: ", ") + ".",
                        "Resolved: \(byStatus["resolved"] ?? 0); suppressed: \(byStatus["suppressed"] ?? 0); "
                            + "risk accepted: \(byStatus["accepted_risk"] ?? 0).",
                        String(format: "Estimated monthly savings available: $%.2f.", savings),
                        "Compliance: \(score.overall.score)% of assessed controls pass across \(frameworks.count) frameworks.",
                    ]),
                .init(heading: "Top risks", table: .init(header: ["severity", "finding", "resource", "region"], rows: top)),
                .init(
                    heading: "Cost: monthly savings by service",
                    paragraphs: [String(format: "Open cost findings would save $%.2f a month, priced from the list prices in PRICES.md.", savings)],
                    chart: byService.map { .init(label: $0.service, value: $0.usd, text: String(format: "$%.2f", $0.usd)) }),
                .init(heading: "Cost: largest savings", table: .init(header: ["finding", "resource", "region", "USD a month"], rows: topSavings)),
                .init(
                    heading: "Compliance by framework",
                    table: .init(
                        header: ["framework", "score %", "passed", "failed"],
                        rows: score.frameworks.map { [$0.name, String($0.score), String($0.passed), String($0.failed)] })),
            ])
        return output(doc, format)
    }

    static let sarifLevel = ["critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"]

    static func sarif(_ findings: [FindingView], rules: [String: Rule]) -> [String: Any] {
        let used = Array(Set(findings.map(\.ruleCode))).sorted()
        let driverRules: [[String: Any]] = used.compactMap { id in
            guard let r = rules[id] else { return nil }
            var props: [String: Any] = ["severity": r.severity.rawValue, "category": r.category, "compliance": r.compliance]
            if let cwe = r.cwe { props["tags"] = [cwe] }
            return [
                "id": r.id, "name": r.id, "shortDescription": ["text": r.title], "fullDescription": ["text": r.description],
                "help": ["text": r.remediation.console + (r.remediation.cli.map { "\n" + $0 } ?? "")],
                "defaultConfiguration": ["level": sarifLevel[r.severity.rawValue] ?? "warning"], "properties": props,
            ]
        }
        let results: [[String: Any]] = findings.map { f in
            [
                "ruleId": f.ruleCode, "level": sarifLevel[f.severity] ?? "warning",
                "message": ["text": "\(f.title): \(f.resourceName) (\(f.region))"],
                "locations": [["logicalLocations": [["name": f.resourceName, "fullyQualifiedName": f.resourceId, "kind": f.resourceType]]]],
                "partialFingerprints": ["vigil/v1": f.fingerprint],
                "properties": ["finding_id": f.id, "status": f.status, "connection_id": f.connectionId, "region": f.region],
            ]
        }
        return [
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
            "runs": [
                [
                    "tool": ["driver": ["name": "Vigil", "informationUri": "https://github.com/vigil", "version": "0.1.0", "rules": driverRules]],
                    "results": results,
                ]
            ],
        ]
    }

    static let ocsfSeverity = ["info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5]

    /// OCSF 1.1 Detection Finding (class 2004).
    static func ocsf(_ f: FindingView) -> [String: Any] {
        let status = ["open": 1, "suppressed": 3, "accepted_risk": 3, "resolved": 4][f.status] ?? 99
        return [
            "class_uid": 2004, "class_name": "Detection Finding", "category_uid": 2, "category_name": "Findings",
            "activity_id": f.status == "resolved" ? 3 : 1, "type_uid": 200401 + (f.status == "resolved" ? 2 : 0),
            "severity_id": ocsfSeverity[f.severity] ?? 0, "severity": f.severity.capitalized, "status_id": status, "status": f.status,
            "time": Int(f.lastSeenAt.timeIntervalSince1970 * 1000),
            "metadata": ["version": "1.1.0", "product": ["name": "Vigil", "vendor_name": "Vigil"], "uid": f.id],
            "finding_info": [
                "uid": f.fingerprint, "title": f.title, "desc": f.description ?? f.title,
                "types": [f.category ?? "misconfiguration"], "first_seen_time": Int(f.firstSeenAt.timeIntervalSince1970 * 1000),
                "last_seen_time": Int(f.lastSeenAt.timeIntervalSince1970 * 1000),
            ],
            "resources": [
                [
                    "uid": f.resourceId, "name": f.resourceName, "type": f.resourceType, "region": f.region,
                    "cloud_partition": "aws",
                ]
            ],
            "cloud": ["provider": "AWS", "region": f.region],
            "remediation": ["desc": f.remediation?.console ?? ""],
            "unmapped": ["rule_id": f.ruleCode, "connection_id": f.connectionId],
        ]
    }
}
