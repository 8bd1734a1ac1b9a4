import AWS
import Bus
import Contracts
import Foundation
import Repo
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

struct RepoCredentialsInput: Codable, Sendable {
    var token: String?
    var sshKey: String?
}
struct RepositoryRequest: Codable, Sendable {
    var repositoryId: String?
    var name: String?
    var cloneUrl: String?
    var defaultBranch: String?
    var credentials: RepoCredentialsInput?
}
struct RepositoryPath: Codable, Sendable { var repositoryId: String }
struct RepositoryListRequest: Codable, Sendable {
    var includeArchived: Bool?
    var limit: Int?
    var skip: Int?
}
struct RepositoryView: Codable, Sendable {
    var id: String
    var name: String
    /// `host/owner/name`, as the code-security API calls it.
    var fullName: String
    var cloneUrl: String
    var defaultBranch: String?
    var archived: Bool
    var status: String
    var credentials: [String: String]
    var createdAt: Date
    var updatedAt: Date
    var lastScanAt: Date?
    var lastError: String?
}
/// The code-security API's pages: `skip` and `limit`, with the total.
struct SkipPage<T: Codable & Sendable>: Codable, Sendable {
    var items: [T]
    var total: Int
    var limit: Int
    var skip: Int
}
struct RepoScanRequest: Codable, Sendable {
    var repositoryId: String
    var scanType: String?
}
struct RepoScanListRequest: Codable, Sendable {
    var repositoryId: String
    var scanType: String?
    var status: String?
    var limit: Int?
    var skip: Int?
}
struct RepoScanPath: Codable, Sendable {
    var repositoryId: String
    var scanId: String
}
/// A scan batch (one repository per batch here: the batch id is the scan id).
struct ScanBatchView: Codable, Sendable {
    var id: String
    var repositoryId: String
    var scanType: String
    var status: String
    var createdAt: Date
    var startedAt: Date?
    var completedAt: Date?
    var repositoriesTotal: Int
    var findingsCount: FindingsCount
    var findingsIngested: Bool
    var error: String?
}
struct RepoScanCounters: Codable, Sendable {
    var commits: Int? = nil
    var treeFiles: Int? = nil
    var filesScanned: Int? = nil
    var bytesScanned: Int? = nil
    var skippedLarge: Int? = nil
    var skippedBinary: Int? = nil
    var secrets: Int? = nil
    /// `sbom_scan`: lockfiles read, components in the SBOM, components with known vulnerabilities.
    var lockfiles: Int? = nil
    var components: Int? = nil
    var vulnerableComponents: Int? = nil
    /// `semgrep_scan`: rules run and their matches.
    var rules: Int? = nil
    var matches: Int? = nil
    /// While a secrets scan reads files: how many it will read.
    var filesTotal: Int? = nil
}
struct RepoScanProgressEntry: Codable, Sendable {
    var repositoryId: String
    var scanId: String
    var status: String
    var phase: String
    var percentComplete: Int
    var counters: RepoScanCounters?
}
struct ScanBatchProgress: Codable, Sendable {
    var scanBatchId: String
    var status: String
    var phase: String
    var percentComplete: Int
    var repositoriesTotal: Int
    var repositoriesCompleted: Int
    var findingsIngested: Bool
    var repositories: [RepoScanProgressEntry]
}
struct RepoFindingResult: Codable, Sendable {
    var fingerprint: String
    var repositoryId: String
    var checkId: String
    var severity: String
    var title: String
    var file: String?
    var line: Int?
    var commit: String?
    var commitLine: Int?
    var detector: String?
    var preview: String?
    var inHistoryOnly: Bool?
    var dependency: RepoDependency?
    var code: RepoCodeIssue?
}
struct ScanBatchResults: Codable, Sendable {
    var scanBatchId: String
    var status: String
    var total: Int
    var bySeverity: FindingsCount
    var findings: [RepoFindingResult]
}

/// The code-security API (reference 002) over Vigil's connections and scans: a repository is a connection
/// with `provider: "repo"`, a scan batch is a scan of it, and its findings go through the one findings
/// pipeline (lifecycle, compliance, reports, webhooks) like every other provider's.
struct RepositoryHandlers: Sendable {
    let connections: ConnectionHandlers
    let scans: ScanHandlers
    static let scanTypes = RepoScanTypes.all

    func register(on r: ServiceResponder) {
        r.add(Endpoint<RepositoryRequest, RepositoryView>(Subjects.Scans.repositoryCreate), handler: create)
        r.add(Endpoint<RepositoryListRequest, SkipPage<RepositoryView>>(Subjects.Scans.repositoryList), handler: list)
        r.add(Endpoint<RepositoryPath, RepositoryView>(Subjects.Scans.repositoryGet), handler: get)
        r.add(Endpoint<RepoScanRequest, ScanBatchView>(Subjects.Scans.repositoryScanCreate), handler: startScan)
        r.add(Endpoint<RepoScanListRequest, SkipPage<ScanBatchView>>(Subjects.Scans.repositoryScanList), handler: listScans)
        r.add(Endpoint<RepoScanPath, ScanBatchView>(Subjects.Scans.repositoryScanGet), handler: getScan)
        r.add(Endpoint<RepoScanPath, ScanBatchProgress>(Subjects.Scans.repositoryScanProgress), handler: progress)
        r.add(Endpoint<RepoScanPath, ScanBatchResults>(Subjects.Scans.repositoryScanResults), handler: results)
        r.add(Endpoint<RepoScanPath, JSONValue>(Subjects.Scans.repositoryScanSbom), handler: sbom)
    }

    static func view(_ c: ConnectionView) -> RepositoryView {
        RepositoryView(
            id: c.id, name: c.name, fullName: RepoScanProvider.displayName(c.settings.cloneUrl ?? ""), cloneUrl: c.settings.cloneUrl ?? "",
            defaultBranch: c.settings.defaultBranch, archived: c.settings.archived ?? false, status: c.status, credentials: c.credentials,
            createdAt: c.createdAt, updatedAt: c.updatedAt, lastScanAt: c.lastScanAt, lastError: c.lastError)
    }

    @Sendable func create(_ q: RepositoryRequest, _ p: Principal, _ ctx: CallContext) async throws -> RepositoryView {
        var settings = ConnectionSettings()
        settings.cloneUrl = q.cloneUrl
        settings.defaultBranch = q.defaultBranch
        guard let url = q.cloneUrl?.trimmingCharacters(in: .whitespaces), !url.isEmpty else {
            throw ServiceError.validation("body.clone_url", "field required: the URL to clone")
        }
        let name = q.name ?? String(RepoScanProvider.displayName(url).split(separator: "/").last ?? "repository")
        let creds = q.credentials.map { given -> AWS.ConnectionCredentials in
            var c = AWS.ConnectionCredentials(privateKey: given.sshKey)
            c.token = given.token
            return c
        }
        do {
            return Self.view(
                try await connections.create(ConnectionRequest(name: name, provider: "repo", credentials: creds, settings: settings), p, ctx))
        } catch let e as ServiceError {
            // The connection's field names (settings.clone_url, credentials.private_key) as this API spells them.
            throw e.renamingPaths([
                "body.settings.clone_url": "body.clone_url", "body.settings.default_branch": "body.default_branch",
                "body.credentials.private_key": "body.credentials.ssh_key",
            ])
        }
    }

    func repository(_ rawId: String, _ p: Principal) async throws -> StoredConnection {
        let id = try Validate.id(rawId, "repository")
        guard let c = try await connections.connections.find(id: id, tenantId: p.tenantId), c.provider == "repo" else {
            throw ServiceError.notFound("repository")
        }
        return c
    }

    @Sendable func list(_ q: RepositoryListRequest, _ p: Principal, _ ctx: CallContext) async throws -> SkipPage<RepositoryView> {
        let (limit, skip) = try Pagination.limitSkip(q.limit, q.skip)
        let (items, total) = try await connections.connections.repositories(
            tenantId: p.tenantId, includeArchived: q.includeArchived ?? false, limit: limit, skip: skip)
        return SkipPage(items: items.map(Self.view), total: total, limit: limit, skip: skip)
    }

    @Sendable func get(_ q: RepositoryPath, _ p: Principal, _ ctx: CallContext) async throws -> RepositoryView {
        Self.view(try await repository(q.repositoryId, p).view)
    }

    /// `secrets_scan` runs; the other scan types say plainly why they cannot (never a fake result).
    @Sendable func startScan(_ q: RepoScanRequest, _ p: Principal, _ ctx: CallContext) async throws -> ScanBatchView {
        let c = try await repository(q.repositoryId, p)
        guard let type = q.scanType else { throw ServiceError.validation("body.scan_type", "field required") }
        guard Self.scanTypes.contains(type) else {
            throw ServiceError.validation("body.scan_type", "must be one of \(Self.scanTypes.joined(separator: ", "))")
        }
        let service = String(type.dropLast("_scan".count))
        let available = connections.settings.repoScanTypes
        guard available.contains(service) else {
            let why =
                type == "deep_ai_scan"
                ? "deep_ai_scan needs a model endpoint, and none is configured on this server"
                : "\(type) is not available on this server (semgrep is not installed); \(available.map { $0 + "_scan" }.joined(separator: ", ")) are"
            throw ServiceError(status: 422, error: "scan_type_unavailable", message: why)
        }
        if c.settings.archived == true { throw ServiceError.conflict("the repository is archived", code: "repository_archived") }
        let scan = try await scans.triggerOne(
            TriggerScanRequest(connectionId: c.view.id, regions: nil, services: nil, scanType: service), p, ctx)
        return Self.batch(scan)
    }

    static func batch(_ s: ScanView) -> ScanBatchView {
        ScanBatchView(
            id: s.id, repositoryId: s.connectionId, scanType: (s.services.first ?? "secrets") + "_scan", status: s.status, createdAt: s.createdAt,
            startedAt: s.startedAt, completedAt: s.completedAt, repositoriesTotal: 1, findingsCount: s.findingsCount,
            findingsIngested: s.findingsIngested, error: s.error)
    }

    @Sendable func listScans(_ q: RepoScanListRequest, _ p: Principal, _ ctx: CallContext) async throws -> SkipPage<ScanBatchView> {
        let c = try await repository(q.repositoryId, p)
        let (limit, skip) = try Pagination.limitSkip(q.limit, q.skip)
        if let t = q.scanType, !Self.scanTypes.contains(t) {
            throw ServiceError.validation("query.scan_type", "must be one of \(Self.scanTypes.joined(separator: ", "))")
        }
        let statuses = try q.status.map { s -> [ScanStatus] in
            guard let st = ScanStatus(rawValue: s) else { throw ServiceError.validation("query.status", "not a scan status") }
            return [st]
        }
        let page = try await scans.scans.list(
            try Pagination(PageRequest(limit: limit, cursor: nil, offset: skip)), tenantId: p.tenantId, connectionId: c.view.id, statuses: statuses,
            service: q.scanType.map { String($0.dropLast("_scan".count)) })
        return SkipPage(items: page.items.map(Self.batch), total: page.total ?? page.items.count, limit: limit, skip: skip)
    }

    func scan(_ q: RepoScanPath, _ p: Principal) async throws -> (StoredConnection, ScanView) {
        let c = try await repository(q.repositoryId, p)
        let s = try await scans.load(p, q.scanId)
        guard s.connectionId == c.view.id else { throw ServiceError.notFound("scan") }
        return (c, s)
    }

    @Sendable func getScan(_ q: RepoScanPath, _ p: Principal, _ ctx: CallContext) async throws -> ScanBatchView {
        Self.batch(try await scan(q, p).1)
    }

    /// Progress a CLI can poll: the batch's phase and percent, and per repository the scan's counters
    /// (commits walked, files and bytes read, files skipped, secrets) once its part has run.
    @Sendable func progress(_ q: RepoScanPath, _ p: Principal, _ ctx: CallContext) async throws -> ScanBatchProgress {
        let (c, s) = try await scan(q, p)
        let part = try await scans.progress(of: s, tenantId: p.tenantId)
        var counters: RepoScanCounters? = nil
        let account = RepoScanProvider.displayName(c.settings.cloneUrl ?? "")
        let type = s.services.first ?? "secrets"
        if let a = try await InventoryStore().attributes(
            connections.store, tenantId: p.tenantId, connectionId: c.view.id, resourceId: "repo:\(account)" + (type == "secrets" ? "" : "#\(type)"),
            scanId: s.id)
        {
            func n(_ k: String) -> Int { if case .number(let d)? = a[k] { return Int(d) } else { return 0 } }
            if type == "semgrep" {
                counters = RepoScanCounters(filesScanned: n("files_scanned"), rules: n("rules"), matches: n("matches"))
            } else if type == "sbom" {
                var lockfiles = 0
                if case .array(let l)? = a["lockfiles"] { lockfiles = l.count }
                counters = RepoScanCounters(lockfiles: lockfiles, components: n("components"), vulnerableComponents: n("vulnerable_components"))
            } else {
                counters = RepoScanCounters(
                    commits: n("commits"), treeFiles: n("tree_files"), filesScanned: n("files_scanned"), bytesScanned: n("bytes_scanned"),
                    skippedLarge: n("skipped_large"), skippedBinary: n("skipped_binary"), secrets: n("secrets"))
            }
        }
        // While the part runs: its live progress (phase, counters so far).
        var livePhase: String? = nil
        var livePercent: Int? = nil
        if counters == nil, s.status == "running",
            let row = try await connections.store.query(
                p.scope, "SELECT live FROM scans.scan_parts WHERE scan_id = $1 AND tenant_id = $2 AND live IS NOT NULL LIMIT 1", [s.id, p.tenantId]
            ).first, let live = try? row.json("live", as: RepoProgress.State.self)
        {
            livePhase = live.phase
            livePercent = live.percent
            counters = RepoScanCounters(
                commits: live.commits, filesScanned: live.filesScanned, bytesScanned: live.bytesScanned, secrets: live.secrets,
                filesTotal: live.filesTotal)
        }
        // Findings are final once the findings service has them: until then the batch is not done.
        let done = ["completed", "failed", "canceled"].contains(s.status)
        let phase = s.status == "completed" && !s.findingsIngested ? "storing_findings" : livePhase ?? part.phase
        let percent = s.status == "completed" && !s.findingsIngested ? 99 : livePercent ?? part.percentComplete
        return ScanBatchProgress(
            scanBatchId: s.id, status: s.status, phase: phase, percentComplete: percent, repositoriesTotal: 1,
            repositoriesCompleted: done ? 1 : 0, findingsIngested: s.findingsIngested,
            repositories: [
                RepoScanProgressEntry(
                    repositoryId: c.view.id, scanId: s.id, status: s.status, phase: phase, percentComplete: percent, counters: counters)
            ])
    }

    /// Every finding of the batch (the failing checks of its scans), with file, line, commit and a redacted preview.
    @Sendable func results(_ q: RepoScanPath, _ p: Principal, _ ctx: CallContext) async throws -> ScanBatchResults {
        let (c, s) = try await scan(q, p)
        let failing = try await scans.scans.failing(tenantId: p.tenantId, scanId: s.id, limit: 5000)
        var counts = FindingsCount()
        for r in failing { counts.add(r.severity) }
        let repositoryId = c.view.id
        let findings = failing.map { (r: ScanResultView) -> RepoFindingResult in
            let e = RepoEvidence(r.evidence)
            return RepoFindingResult(
                fingerprint: r.fingerprint, repositoryId: repositoryId, checkId: r.ruleId, severity: r.severity, title: r.title, file: e.file,
                line: e.line, commit: e.commit, commitLine: e.commitLine, detector: e.detector, preview: e.preview, inHistoryOnly: e.inHistoryOnly,
                dependency: e.dependency, code: e.code)
        }
        return ScanBatchResults(scanBatchId: s.id, status: s.status, total: findings.count, bySeverity: counts, findings: findings)
    }

    /// The CycloneDX 1.5 document of an `sbom_scan` (the latest of the repository: an older one was replaced).
    @Sendable func sbom(_ q: RepoScanPath, _ p: Principal, _ ctx: CallContext) async throws -> JSONValue {
        let (c, s) = try await scan(q, p)
        guard s.services.first == "sbom" else { throw ServiceError.validation("path.scan_id", "not an sbom_scan") }
        guard s.status == "completed" else {
            throw ServiceError.conflict("the scan is \(s.status); the SBOM is ready once it completed", code: "scan_not_completed")
        }
        let account = RepoScanProvider.displayName(c.settings.cloneUrl ?? "")
        guard
            let a = try await InventoryStore().attributes(
                connections.store, tenantId: p.tenantId, connectionId: c.view.id, resourceId: "repo:\(account)#sbom", scanId: s.id),
            let doc = a["cyclonedx"]
        else { throw ServiceError(status: 410, error: "sbom_replaced", message: "a later sbom_scan of the repository replaced this SBOM") }
        return doc
    }
}
