import Bus
import Contracts
import Foundation
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct RepoFindingListRequest: Codable, Sendable {
    var repositoryId: String
    var scanBatchId: String?
    var severity: String?
    var status: String?
    var scanType: String?
    var limit: Int?
    var skip: Int?
}
struct RepoFindingPath: Codable, Sendable {
    var repositoryId: String
    var findingId: String
}
struct RepoFindingUpdate: Codable, Sendable {
    var repositoryId: String
    var findingId: String
    var status: String?
    var reason: String?
}
struct RepoFindingView: Codable, Sendable {
    var id: String
    var repositoryId: String
    var scanBatchId: String
    var scanType: String
    var checkId: String
    var severity: String
    var status: String
    var title: String
    var description: String?
    var remediation: Rule.Remediation?
    var cweId: String?
    var file: String?
    var line: Int?
    var commit: String?
    var commitLine: Int?
    var detector: String?
    var preview: String?
    var inHistoryOnly: Bool?
    var dependency: RepoDependency?
    var code: RepoCodeIssue?
    var firstSeenAt: Date
    var lastSeenAt: Date
    var resolvedAt: Date?
    var statusReason: String?
}
struct RepoFindingPage: Codable, Sendable {
    var items: [RepoFindingView]
    var total: Int
    var limit: Int
    var skip: Int
}

/// Repository findings as the code-security API shows them (reference 002): the same findings as
/// everywhere (lifecycle, compliance, reports, webhooks), with file, line, commit and a redacted preview, and
/// its statuses over ours — `ignored` and `false_positive` are suppressions with that reason,
/// `needs_manual_review` is an open finding marked for a person, `resolved` is a person's resolution (a
/// later scan that still sees the secret reopens it). Every change is a finding event.
struct RepoFindingHandlers: Sendable {
    let store: Store
    let catalog: RuleCatalog
    /// Asks the scan orchestrator whether a repository exists in the workspace (an empty list of another
    /// workspace's repository is a 404, as everywhere else).
    var bus: BusConnection? = nil

    struct RepoRef: Codable, Sendable { var repositoryId: String }
    struct RepoSeen: Codable, Sendable { var id: String }

    func requireRepository(_ id: String, _ ctx: CallContext) async throws {
        guard let bus else { return }
        _ = try await bus.request(
            Endpoint<RepoRef, RepoSeen>(Subjects.Scans.repositoryGet), RepoRef(repositoryId: id), context: ctx, timeout: .seconds(5))
    }
    static let statuses = ["open", "resolved", "ignored", "false_positive", "needs_manual_review"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<RepoFindingListRequest, RepoFindingPage>(Subjects.Findings.repositoryFindingList), handler: list)
        r.add(Endpoint<RepoFindingPath, RepoFindingView>(Subjects.Findings.repositoryFindingGet), handler: get)
        r.add(Endpoint<RepoFindingUpdate, RepoFindingView>(Subjects.Findings.repositoryFindingUpdate), handler: update)
    }

    /// The checks of a scan type (`query.scan_type`), validated.
    static func rulePattern(_ scanType: String) throws -> String {
        guard RepoScanTypes.all.contains(scanType) else {
            throw ServiceError.validation("query.scan_type", "must be one of \(RepoScanTypes.all.joined(separator: ", "))")
        }
        return RepoScanTypes.rulePattern(scanType)
    }

    /// The public status of a stored finding.
    static func status(_ status: String, reason: String?) -> String {
        let r = reason ?? ""
        switch status {
        case "open": return r.hasPrefix("needs_manual_review") ? "needs_manual_review" : "open"
        case "resolved": return "resolved"
        default: return r.hasPrefix("false_positive") ? "false_positive" : "ignored"
        }
    }

    static func view(_ row: Row, rules: [String: Rule]) throws -> RepoFindingView {
        let f = try FindingStore.view(row, rules: rules)
        let e = RepoEvidence(f.evidence)
        return RepoFindingView(
            id: f.id, repositoryId: f.connectionId, scanBatchId: f.scanJobId, scanType: f.service == "repo" ? "secrets_scan" : f.service,
            checkId: f.ruleCode, severity: f.severity, status: status(f.status, reason: f.statusReason), title: f.title,
            description: f.description, remediation: f.remediation, cweId: f.cwe, file: e.file, line: e.line, commit: e.commit,
            commitLine: e.commitLine, detector: e.detector, preview: e.preview, inHistoryOnly: e.inHistoryOnly, dependency: e.dependency,
            code: e.code,
            firstSeenAt: f.firstSeenAt, lastSeenAt: f.lastSeenAt, resolvedAt: f.resolvedAt, statusReason: f.statusReason)
    }

    @Sendable func list(_ q: RepoFindingListRequest, _ p: Principal, _ ctx: CallContext) async throws -> RepoFindingPage {
        var f = Filter(tenant: p.tenantId)
        f.add({ "connection_id = $\($0)" }, try Validate.id(q.repositoryId, "repository"))
        f.add({ "provider = $\($0)" }, "repo")
        if let b = try Filter.uuid(q.scanBatchId, path: "query.scan_batch_id") { f.add({ "last_scan_id = $\($0)" }, b) }
        if let s = try Validate.list(q.severity, path: "query.severity", allowed: severityNames) {
            f.add({ "severity = ANY($\($0)::text[])" }, ArrayParameter(s))
        }
        if let t = q.scanType { f.add({ "rule_id LIKE $\($0)" }, try Self.rulePattern(t)) }
        if let s = q.status {
            guard Self.statuses.contains(s) else {
                throw ServiceError.validation("query.status", "must be one of \(Self.statuses.joined(separator: ", "))")
            }
            switch s {
            case "open": f.add({ "status = 'open' AND coalesce(status_reason, '') NOT LIKE $\($0)" }, "needs_manual_review%")
            case "needs_manual_review": f.add({ "status = 'open' AND status_reason LIKE $\($0)" }, "needs_manual_review%")
            case "resolved": f.add({ "status = $\($0)" }, "resolved")
            case "false_positive": f.add({ "status IN ('suppressed', 'accepted_risk') AND status_reason LIKE $\($0)" }, "false_positive%")
            default: f.add({ "status IN ('suppressed', 'accepted_risk') AND coalesce(status_reason, '') NOT LIKE $\($0)" }, "false_positive%")
            }
        }
        let (limit, skip) = try Pagination.limitSkip(q.limit, q.skip)
        let page = try SortedPage(sortBy: "severity", limit: limit, cursor: nil, offset: skip)
        let result = try await store.transaction(p.scope) { tx in
            let rules = try await catalog.definitionsById(tx, tenantId: p.tenantId)
            let listed = try await FindingStore.list(tx, "findings.findings", f, page, counted: true) { try Self.view($0, rules: rules) }
            return RepoFindingPage(items: listed.items, total: listed.total ?? listed.items.count, limit: limit, skip: skip)
        }
        // Nothing listed: no findings yet, or not this workspace's repository (then 404, like its other routes).
        if result.total == 0 { try await requireRepository(q.repositoryId, ctx) }
        return result
    }

    func load(_ tx: Transaction, _ q: RepoFindingPath, _ p: Principal, lock: Bool = false) async throws -> Row {
        let repo = try Validate.id(q.repositoryId, "repository")
        let id = try Validate.id(q.findingId, "finding")
        guard let row = try await FindingStore.load(tx, id: id, tenantId: p.tenantId, lock: lock), try row.string("connection_id") == repo,
            try row.string("provider") == "repo"
        else { throw ServiceError.notFound("finding") }
        return row
    }

    @Sendable func get(_ q: RepoFindingPath, _ p: Principal, _ ctx: CallContext) async throws -> RepoFindingView {
        try await store.transaction(p.scope) { tx in
            try Self.view(try await load(tx, q, p), rules: try await catalog.definitionsById(tx, tenantId: p.tenantId))
        }
    }

    @Sendable func update(_ q: RepoFindingUpdate, _ p: Principal, _ ctx: CallContext) async throws -> RepoFindingView {
        guard let wanted = q.status else { throw ServiceError.validation("body.status", "field required") }
        guard Self.statuses.contains(wanted) else {
            throw ServiceError.validation("body.status", "must be one of \(Self.statuses.joined(separator: ", "))")
        }
        let note = try q.reason.map { try Validate.text($0, path: "body.reason", min: 1, max: 990) }
        // Stored status, its reason, and the event it is.
        let (status, reason, event): (String, String?, String) =
            switch wanted {
            case "open": ("open", note, "reopened")
            case "needs_manual_review": ("open", "needs_manual_review" + (note.map { ": " + $0 } ?? ""), "reopened")
            case "resolved": ("resolved", "resolved by a person" + (note.map { ": " + $0 } ?? ""), "resolved")
            case "false_positive": ("suppressed", "false_positive" + (note.map { ": " + $0 } ?? ""), "suppressed")
            default: ("suppressed", "ignored" + (note.map { ": " + $0 } ?? ""), "suppressed")
            }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let row = try await load(tx, RepoFindingPath(repositoryId: q.repositoryId, findingId: q.findingId), p, lock: true)
            let current = try row.string("status")
            let currentPublic = Self.status(current, reason: row.optionalString("status_reason"))
            let rules = try await catalog.definitionsById(tx, tenantId: p.tenantId)
            guard currentPublic != wanted else { return try Self.view(row, rules: rules) }
            let id = try row.string("id")
            let updated =
                status == "resolved"
                ? try await FindingStore.resolveByPerson(tx, id: id, tenantId: p.tenantId, reason: reason ?? "", actor: p.actorId)
                : try await FindingStore.setStatus(tx, id: id, tenantId: p.tenantId, to: status, reason: reason, actor: p.actorId, expiresAt: nil)
            try await Lifecycle.record(
                tx, tenantId: p.tenantId,
                [
                    Transition(
                        findingId: id, connectionId: try row.string("connection_id"), ruleId: try row.string("rule_id"),
                        severity: try row.string("severity"), eventType: event, from: current, to: status, actor: p.actorId, reason: reason,
                        scanId: nil, resourceId: try row.string("resource_id"), title: try row.string("title"))
                ])
            return try Self.view(updated, rules: rules)
        }
    }
}
