import AWS
import Bus
import Contracts
import Foundation
import Logging
import ScanEngine
import ServiceRuntime
import Store
import VigilCore

// MARK: - Contracts

struct TriggerScanRequest: Codable, Sendable {
    var connectionId: String?
    /// Several connections at once, or every connection of the workspace.
    var connectionIds: [String]? = nil
    var allConnections: Bool? = nil
    var regions: [String]?
    var services: [String]?
    /// Set by `POST /scans` only (the trigger route has no mode): web scans' mode.
    var mode: String? = nil
    /// Repositories: which scan (`secrets`); set by `POST /repositories/{id}/scans`.
    var scanType: String? = nil
}
struct ScanPath: Codable, Sendable {
    var scanId: String
    /// Web scans: embed the failing checks (`GET /scans/{id}?include_findings=true`).
    var includeFindings: Bool? = nil
}
struct ScanListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var connectionId: String?
    var status: String?
}
struct ScanResultsRequest: Codable, Sendable {
    var scanId: String
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var status: String?
    var severity: String?
    var ruleId: String?
}
struct FindingsCount: Codable, Sendable, Equatable {
    var critical = 0, high = 0, medium = 0, low = 0, info = 0

    mutating func add(_ severity: String) {
        switch severity {
        case "critical": critical += 1
        case "high": high += 1
        case "medium": medium += 1
        case "low": low += 1
        default: info += 1
        }
    }
}
struct ScanView: Codable, Sendable {
    var id: String
    var connectionId: String
    var status: String
    var regions: [String]
    var services: [String]
    var createdAt: Date
    var startedAt: Date?
    var completedAt: Date?
    var resourcesScanned: Int
    var checksEvaluated: Int
    var findingsCount: FindingsCount
    var estimatedMonthlySavings: Double
    var complete: Bool
    var accountId: String?
    var error: String?
    var attempts: Int
    var requestedBy: String?
    var apiCalls: Int
    var apiRetries: Int
    /// When one trigger started several scans: all their ids (this one first).
    var scanIds: [String]? = nil
    /// Web scans (FixVibe's fields): the target, the mode, failing checks by category, and the failing
    /// checks themselves when asked for.
    var targetUrl: String? = nil
    var targetHostname: String? = nil
    var mode: String? = nil
    /// True once the findings service has applied every result of the scan: findings read after this
    /// are the scan's final ones (`completed` alone says the scan's collection ended).
    var findingsIngested: Bool = false
    var findingsIngestedAt: Date? = nil
    var categories: [String: FindingsCount]? = nil
    var findings: [ScanResultView]? = nil
}
struct ScanProgress: Codable, Sendable {
    var scanId: String
    var status: String
    var phase: String
    var percentComplete: Int
    var partsTotal: Int
    var partsDone: Int
    var parts: [ScanPartReport]
}
struct ScanResultView: Codable, Sendable {
    var id: String
    var fingerprint: String
    var ruleId: String
    var status: String
    var severity: String
    var title: String
    var resourceId: String
    var resourceType: String
    var resourceName: String
    var region: String
    var service: String
    var evidence: [String: JSONValue]
    var estimatedMonthlySavings: Double?
    var createdAt: Date
}

/// A scan job on `vigil.jobs.scan.aws`.
struct ScanJob: Codable, Sendable {
    var scanId: String
    var tenantId: String
    var connectionId: String
}
struct JobEnvelope<T: Codable & Sendable>: Codable, Sendable {
    var id: String
    var data: T
}

/// The scan events written with the state changes that cause them.
enum ScanEvents {
    /// The terminal event every scan ends with (completed, failed or canceled).
    static func finished(_ tx: Transaction, _ scan: ScanView, tenantId: String, parts: [ScanPartReport]) async throws {
        struct Data: Encodable, Sendable {
            var scanId: String
            var connectionId: String
            var status: String
            var complete: Bool
            var findingsCount: FindingsCount
            var estimatedMonthlySavings: Double
            var resourcesScanned: Int
            var checksEvaluated: Int
            var parts: [ScanPartReport]
            var error: String?
        }
        try await tx.emit(
            Events.scanCompleted, tenantId: tenantId,
            data: Data(
                scanId: scan.id, connectionId: scan.connectionId, status: scan.status, complete: scan.complete, findingsCount: scan.findingsCount,
                estimatedMonthlySavings: scan.estimatedMonthlySavings, resourcesScanned: scan.resourcesScanned,
                checksEvaluated: scan.checksEvaluated, parts: parts, error: scan.error))
    }
}

// MARK: - API role

struct ScanHandlers: Sendable {
    let store: Store
    let bus: BusConnection
    var scans: ScanStore { ScanStore(db: store) }
    var connections: ConnectionStore { ConnectionStore(db: store) }

    func register(on r: ServiceResponder) {
        r.add(Endpoint<TriggerScanRequest, ScanView>(Subjects.Scans.scanTrigger), handler: trigger)
        r.add(Endpoint<ScanListRequest, Page<ScanView>>(Subjects.Scans.scanList), handler: list)
        r.add(Endpoint<ScanPath, ScanView>(Subjects.Scans.scanGet), handler: get)
        r.add(Endpoint<ScanPath, ScanProgress>(Subjects.Scans.scanProgress), handler: progress)
        r.add(Endpoint<ScanPath, ScanView>(Subjects.Scans.scanCancel), handler: cancel)
        r.add(Endpoint<ScanPath, Empty>(Subjects.Scans.scanDelete), handler: delete)
        r.add(Endpoint<ScanResultsRequest, Page<ScanResultView>>(Subjects.Scans.scanResults), handler: results)
    }

    @Sendable func trigger(_ given: TriggerScanRequest, _ p: Principal, _ ctx: CallContext) async throws -> ScanView {
        // The REST trigger has no mode: an active web scan is started only by `POST /scans`, after its checks.
        var req = given
        req.mode = nil
        if req.connectionIds != nil || req.allConnections == true { return try await triggerMany(req, p, ctx) }
        return try await triggerOne(req, p, ctx)
    }

    /// One scan of one connection (`mode` as the caller decided it).
    func triggerOne(_ req: TriggerScanRequest, _ p: Principal, _ ctx: CallContext) async throws -> ScanView {
        guard let cid = req.connectionId else { throw ServiceError.validation("body.connection_id", "field required") }
        guard ID.isValid(cid) else { throw ServiceError.validation("body.connection_id", "must be a connection id (UUID)") }
        let issues = Self.scopeIssues(regions: req.regions, services: req.services)
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let id = ID.make()
        guard try await connections.exists(id: cid.lowercased(), tenantId: p.tenantId) else { throw ServiceError.notFound("connection") }
        // The plan's scan quota: reserved now, committed when the scan completes, released if it fails.
        let reservation = try await Quotas.reserve(bus, tenantId: p.tenantId, quota: "scans", ref: id)
        do {
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                try await insertScan(tx, tenantId: p.tenantId, actor: p.actorId, id: id, cid: cid, req: req, limits: reservation.limits)
            }
        } catch {
            await Quotas.release(bus, tenantId: p.tenantId, quota: "scans", ref: id)
            throw error
        }
    }

    /// One scan per connection named (or per connection of the workspace), started together: every
    /// scan's quota is reserved first, so either all start or none does. The reply is the first scan
    /// with `scan_ids` listing them all.
    func triggerMany(_ req: TriggerScanRequest, _ p: Principal, _ ctx: CallContext) async throws -> ScanView {
        let issues = Self.scopeIssues(regions: req.regions, services: req.services)
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        var ids: [String]
        if req.allConnections == true {
            ids = try await connections.ids(tenantId: p.tenantId)
            guard !ids.isEmpty else { throw ServiceError.validation("body.all_connections", "the workspace has no connection") }
        } else {
            let given = req.connectionIds ?? []
            guard (1...100).contains(given.count), given.allSatisfy(ID.isValid) else {
                throw ServiceError.validation("body.connection_ids", "must list 1 to 100 connection ids (UUIDs)")
            }
            ids = Array(Set(given.map { $0.lowercased() })).sorted()
            for id in ids where try await !connections.exists(id: id, tenantId: p.tenantId) { throw ServiceError.notFound("connection") }
        }
        var reserved: [(scan: String, connection: String, limits: Quotas.Limits)] = []
        do {
            for cid in ids {
                let scan = ID.make()
                reserved.append((scan, cid, try await Quotas.reserve(bus, tenantId: p.tenantId, quota: "scans", ref: scan).limits))
            }
            let views = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                var out: [ScanView] = []
                for r in reserved {
                    var one = req
                    one.connectionId = r.connection
                    out.append(
                        try await insertScan(tx, tenantId: p.tenantId, actor: p.actorId, id: r.scan, cid: r.connection, req: one, limits: r.limits))
                }
                return out
            }
            var first = views[0]
            first.scanIds = views.map(\.id)
            return first
        } catch {
            for r in reserved { await Quotas.release(bus, tenantId: p.tenantId, quota: "scans", ref: r.scan) }
            throw error
        }
    }

    /// What is wrong with a scan's narrowing to regions and services (for a trigger and a schedule).
    static func scopeIssues(regions: [String]?, services: [String]?) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        if let regions {
            if regions.isEmpty || regions.count > 40 || regions.contains(where: { !ConnectionHandlers.matches($0, ConnectionHandlers.regionPattern) })
            {
                issues.append(.init(path: "body.regions", message: "must list 1 to 40 AWS region names like us-east-1"))
            }
        }
        if let services {
            let unknown = services.filter { AWSCollectors.named($0) == nil }
            if services.isEmpty || !unknown.isEmpty {
                issues.append(.init(path: "body.services", message: "must list services among: \(AWSCollectors.names.joined(separator: ", "))"))
            }
        }
        return issues
    }

    /// Inserts a queued scan of the connection and its job; `actor` is who asked (a user, a key, a schedule).
    func insertScan(
        _ tx: Transaction, tenantId: String, actor: String, id: String, cid: String, req: TriggerScanRequest, limits: Quotas.Limits
    ) async throws -> ScanView {
        guard let conn = try await connections.find(tx, id: cid.lowercased(), tenantId: tenantId) else {
            throw ServiceError.notFound("connection")
        }
        // Over the plan's connection limit (after a downgrade) the newest connections are read-only.
        if let max = limits.connections {
            let older = try await connections.countOlder(tx, tenantId: tenantId, than: conn)
            if older >= max {
                throw ServiceError.quotaExceeded(
                    QuotaDetail(name: "connections", limit: max, used: older + 1, resetsAt: nil),
                    message:
                        "this connection is read-only: the plan allows \(max) connections and this is number \(older + 1); "
                        + "upgrade or delete connections to scan it"
                )
            }
        }
        let settings = conn.settings
        var regions = Array(Set(req.regions ?? settings.regions ?? ["us-east-1"])).sorted()
        var services = req.services.map { Array(Set($0)).sorted() } ?? AWSCollectors.names
        if conn.provider == "linux" {
            // One part: the host (its name for SSH, the connector's host for an agent).
            regions = [settings.host ?? "host"]
            services = ["host"]
        } else if conn.provider == "web" {
            // One part: the site.
            regions = ["global"]
            services = ["web"]
        } else if conn.provider == "repo" {
            // One part per scan type.
            regions = ["global"]
            services = [req.scanType ?? "secrets"]
        }
        let scan = try await scans.insert(
            tx, id: id, tenantId: tenantId, connectionId: cid.lowercased(), regions: regions, services: services, requestedBy: actor,
            mode: conn.provider == "web" ? (req.mode ?? "passive") : "passive")
        let provider = conn.provider
        try await tx.emit(
            Jobs.scan(provider: provider), type: "scan.job", tenantId: tenantId,
            data: ScanJob(scanId: id, tenantId: tenantId, connectionId: cid.lowercased()))
        try await tx.emit(
            Events.scanQueued, tenantId: tenantId,
            data: ["scan_id": id, "connection_id": cid.lowercased(), "actor": actor])
        return scan
    }

    @Sendable func list(_ req: ScanListRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ScanView> {
        let page = try Pagination(PageRequest(limit: req.limit, cursor: req.cursor, offset: req.offset))
        var connectionId: String? = nil
        if let c = req.connectionId {
            guard ID.isValid(c) else { throw ServiceError.validation("query.connection_id", "must be a UUID") }
            connectionId = c.lowercased()
        }
        var statuses: [ScanStatus]? = nil
        if let s = req.status {
            let wanted = s.split(separator: ",").map { ScanStatus(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
            guard !wanted.isEmpty, wanted.allSatisfy({ $0 != nil }) else {
                throw ServiceError.validation(
                    "query.status", "must be one or more of \(ScanStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            statuses = wanted.compactMap { $0 }
        }
        return try await scans.list(page, tenantId: p.tenantId, connectionId: connectionId, statuses: statuses)
    }

    func load(_ p: Principal, _ rawId: String) async throws -> ScanView {
        let id = try Validate.id(rawId, "scan")
        guard let scan = try await scans.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("scan") }
        return scan
    }

    @Sendable func get(_ req: ScanPath, _ p: Principal, _ ctx: CallContext) async throws -> ScanView {
        let scan = try await load(p, req.scanId)
        guard let c = try await connections.find(id: scan.connectionId, tenantId: p.tenantId), c.provider == "web" else { return scan }
        return try await WebScanHandlers.decorate(scan, connection: c, store: scans, tenantId: p.tenantId, withFindings: req.includeFindings == true)
    }

    @Sendable func progress(_ req: ScanPath, _ p: Principal, _ ctx: CallContext) async throws -> ScanProgress {
        try await progress(of: try await load(p, req.scanId), tenantId: p.tenantId)
    }

    /// A loaded scan's progress from its parts.
    func progress(of scan: ScanView, tenantId: String) async throws -> ScanProgress {
        let parts = try await scans.parts(scanId: scan.id, tenantId: tenantId)
        let done = parts.filter { PartStatus(rawValue: $0.status)?.isDone ?? false }.count
        let phase: String
        switch scan.status {
        case "queued": phase = "queued"
        case "running": phase = parts.isEmpty ? "connecting" : (done == parts.count ? "finalizing" : "collecting")
        default: phase = scan.status
        }
        let percent = scan.status == "completed" ? 100 : (parts.isEmpty ? 0 : min(99, done * 100 / parts.count))
        return ScanProgress(
            scanId: scan.id, status: scan.status, phase: phase, percentComplete: percent, partsTotal: parts.count,
            partsDone: done, parts: parts)
    }

    @Sendable func cancel(_ req: ScanPath, _ p: Principal, _ ctx: CallContext) async throws -> ScanView {
        let id = try Validate.id(req.scanId, "scan")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let status = try await scans.lockStatus(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("scan") }
            guard !status.isTerminal else { throw ServiceError.conflict("scan is already \(status.rawValue)", code: "scan_finished") }
            let scan = try await scans.markCanceled(tx, id: id, tenantId: p.tenantId, reason: "canceled by \(p.actorId)")
            try await ScanEvents.finished(tx, scan, tenantId: p.tenantId, parts: try await scans.parts(tx, scanId: id))
            return scan
        }
    }

    /// Removes a finished scan from the history (its findings and their events stay).
    @Sendable func delete(_ req: ScanPath, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
        let id = try Validate.id(req.scanId, "scan")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let status = try await scans.lockStatus(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("scan") }
            guard status.isTerminal else {
                throw ServiceError.conflict("the scan is \(status.rawValue); cancel it before deleting it", code: "scan_running")
            }
            _ = try await ScanStore.delete(tx, id: id, tenantId: p.tenantId)
            try await tx.emit(Events.scanDeleted, tenantId: p.tenantId, data: ["scan_id": id, "actor": p.actorId])
            return Empty()
        }
    }

    @Sendable func results(_ req: ScanResultsRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ScanResultView> {
        let scan = try await load(p, req.scanId)
        let page = try Pagination(PageRequest(limit: req.limit, cursor: req.cursor, offset: req.offset))
        var filter = ScanStore.ResultFilter()
        if let s = req.status {
            guard ["PASS", "FAIL"].contains(s.uppercased()) else { throw ServiceError.validation("query.status", "must be PASS or FAIL") }
            filter.status = s.uppercased()
        }
        if let s = req.severity {
            let wanted = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard wanted.allSatisfy({ Severity(rawValue: $0) != nil }) else {
                throw ServiceError.validation("query.severity", "must be one or more of critical, high, medium, low, info")
            }
            filter.severities = wanted
        }
        if let r = req.ruleId {
            guard r.count <= 200 else { throw ServiceError.validation("query.rule_id", "must be at most 200 characters") }
            filter.ruleId = r
        }
        return try await scans.results(page, tenantId: p.tenantId, scanId: scan.id, filter)
    }
}
