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
    var regions: [String]?
    var services: [String]?
}
struct ScanPath: Codable, Sendable { var scanId: String }
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

enum ScanStatus {
    static let terminal: Set<String> = ["completed", "failed", "canceled"]
    static let all = ["queued", "running", "completed", "failed", "canceled"]
}

// MARK: - Storage helpers shared by the API and the worker

enum ScanRows {
    static func view(_ r: Row) throws -> ScanView {
        ScanView(
            id: try r.string("id"), connectionId: try r.string("connection_id"), status: try r.string("status"),
            regions: try r.stringArray("regions"), services: try r.stringArray("services"),
            createdAt: try r.date("created_at"), startedAt: r.optionalDate("started_at"), completedAt: r.optionalDate("completed_at"),
            resourcesScanned: try r.int("resources_scanned"), checksEvaluated: try r.int("checks_evaluated"),
            findingsCount: FindingsCount(
                critical: try r.int("critical_count"), high: try r.int("high_count"),
                medium: try r.int("medium_count"), low: try r.int("low_count"), info: try r.int("info_count")),
            estimatedMonthlySavings: Double(r.optionalString("savings") ?? "0") ?? 0, complete: try r.bool("complete"),
            accountId: r.optionalString("account_id"), error: r.optionalString("error"), attempts: try r.int("attempts"),
            requestedBy: r.optionalString("requested_by"), apiCalls: try r.int("api_calls"), apiRetries: try r.int("api_retries"))
    }

    static func part(_ r: Row) throws -> ScanPartReport {
        ScanPartReport(
            service: try r.string("service"), region: try r.string("region"), status: try r.string("status"),
            resources: try r.int("resources"), checks: try r.int("checks"), failures: try r.int("failures"), error: r.optionalString("error"))
    }

    /// The terminal event every scan ends with (completed, failed or canceled).
    static func emitFinished(_ tx: Transaction, _ scan: ScanView, tenantId: String, parts: [ScanPartReport]) async throws {
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

    /// Cancels every queued or running scan of a connection (inside the caller's transaction).
    static func cancelAll(_ tx: Transaction, tenantId: String, connectionId: String, reason: String) async throws {
        let rows = try await tx.query(
            """
            UPDATE scans.scans SET status = 'canceled', completed_at = now(), error = $3
            WHERE tenant_id = $1 AND connection_id = $2 AND status IN ('queued', 'running') RETURNING *
            """, [tenantId, connectionId, reason])
        for r in rows { try await emitFinished(tx, try view(r), tenantId: tenantId, parts: []) }
    }
}

// MARK: - API role

struct ScanHandlers: Sendable {
    let store: Store
    let bus: BusConnection

    func register(on r: ServiceResponder) {
        r.add(Endpoint<TriggerScanRequest, ScanView>(Subjects.Scans.scanTrigger), handler: trigger)
        r.add(Endpoint<ScanListRequest, Page<ScanView>>(Subjects.Scans.scanList), handler: list)
        r.add(Endpoint<ScanPath, ScanView>(Subjects.Scans.scanGet), handler: get)
        r.add(Endpoint<ScanPath, ScanProgress>(Subjects.Scans.scanProgress), handler: progress)
        r.add(Endpoint<ScanPath, ScanView>(Subjects.Scans.scanCancel), handler: cancel)
        r.add(Endpoint<ScanResultsRequest, Page<ScanResultView>>(Subjects.Scans.scanResults), handler: results)
    }

    @Sendable func trigger(_ req: TriggerScanRequest, _ ctx: CallContext) async throws -> ScanView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .analyst)
        guard let cid = req.connectionId else { throw ServiceError.validation("body.connection_id", "field required") }
        guard ID.isValid(cid) else { throw ServiceError.validation("body.connection_id", "must be a connection id (UUID)") }
        var issues: [ValidationIssue] = []
        if let regions = req.regions {
            if regions.isEmpty || regions.count > 40 || regions.contains(where: { !ConnectionHandlers.matches($0, ConnectionHandlers.regionPattern) })
            {
                issues.append(.init(path: "body.regions", message: "must list 1 to 40 AWS region names like us-east-1"))
            }
        }
        if let services = req.services {
            let unknown = services.filter { AWSCollectors.named($0) == nil }
            if services.isEmpty || !unknown.isEmpty {
                issues.append(.init(path: "body.services", message: "must list services among: \(AWSCollectors.names.joined(separator: ", "))"))
            }
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let id = ID.make()
        guard
            try await store.query(p.scope, "SELECT 1 FROM scans.connections WHERE id = $1 AND tenant_id = $2", [cid.lowercased(), p.tenantId]).first
                != nil
        else {
            throw ServiceError.notFound("connection")
        }
        // The plan's scan quota: reserved now, committed when the scan completes, released if it fails.
        let reservation = try await Quotas.reserve(bus, tenantId: p.tenantId, quota: "scans", ref: id)
        do {
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                try await insertScan(tx, p: p, id: id, cid: cid, req: req, limits: reservation.limits)
            }
        } catch {
            await Quotas.release(bus, tenantId: p.tenantId, quota: "scans", ref: id)
            throw error
        }
    }

    func insertScan(_ tx: Transaction, p: Principal, id: String, cid: String, req: TriggerScanRequest, limits: Quotas.Limits) async throws -> ScanView
    {
        guard
            let conn = try await tx.one(
                "SELECT provider, settings, created_at FROM scans.connections WHERE id = $1 AND tenant_id = $2",
                [cid.lowercased(), p.tenantId])
        else { throw ServiceError.notFound("connection") }
        // Over the plan's connection limit (after a downgrade) the newest connections are read-only.
        if let max = limits.connections {
            let older = try await tx.one(
                """
                SELECT count(*) AS n FROM scans.connections WHERE tenant_id = $1 AND (created_at, id) < ($2::timestamptz, $3::uuid)
                """, [p.tenantId, try conn.string("created_at"), cid.lowercased()])!.int("n")
            if older >= max {
                throw ServiceError.quotaExceeded(
                    QuotaDetail(name: "connections", limit: max, used: older + 1, resetsAt: nil),
                    message:
                        "this connection is read-only: the plan allows \(max) connections and this is number \(older + 1); "
                        + "upgrade or delete connections to scan it"
                )
            }
        }
        let settings: ConnectionSettings = try conn.json("settings")
        let regions = Array(Set(req.regions ?? settings.regions ?? ["us-east-1"])).sorted()
        let services = req.services.map { Array(Set($0)).sorted() } ?? AWSCollectors.names
        let row = try await tx.one(
            """
            INSERT INTO scans.scans (id, tenant_id, connection_id, status, regions, services, requested_by)
            VALUES ($1, $2, $3, 'queued', $4, $5, $6) RETURNING *
            """, [id, p.tenantId, cid.lowercased(), ArrayParameter(regions), ArrayParameter(services), p.actorId])!
        let provider = try conn.string("provider")
        try await tx.emit(
            Jobs.scan(provider: provider), type: "scan.job", tenantId: p.tenantId,
            data: ScanJob(scanId: id, tenantId: p.tenantId, connectionId: cid.lowercased()))
        try await tx.emit(
            Events.scanQueued, tenantId: p.tenantId,
            data: ["scan_id": id, "connection_id": cid.lowercased(), "actor": p.actorId])
        return try ScanRows.view(row)
    }

    @Sendable func list(_ req: ScanListRequest, _ ctx: CallContext) async throws -> Page<ScanView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        let page = try Pagination(PageRequest(limit: req.limit, cursor: req.cursor, offset: req.offset))
        var filter = "tenant_id = $1"
        var values: [any SQLParameter] = [p.tenantId]
        if let c = req.connectionId {
            guard ID.isValid(c) else { throw ServiceError.validation("query.connection_id", "must be a UUID") }
            values.append(c.lowercased())
            filter += " AND connection_id = $\(values.count)"
        }
        if let s = req.status {
            let wanted = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !wanted.isEmpty, wanted.allSatisfy(ScanStatus.all.contains) else {
                throw ServiceError.validation("query.status", "must be one or more of \(ScanStatus.all.joined(separator: ", "))")
            }
            values.append(ArrayParameter(wanted))
            filter += " AND status = ANY($\(values.count)::text[])"
        }
        return try await store.transaction(p.scope) { tx in
            try await page.list(tx, from: "scans.scans", filter: filter, values, map: ScanRows.view)
        }
    }

    func load(_ p: Principal, _ rawId: String) async throws -> Row {
        let id = try Validate.id(rawId, "scan")
        guard let row = try await store.query(p.scope, "SELECT * FROM scans.scans WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]).first else {
            throw ServiceError.notFound("scan")
        }
        return row
    }

    @Sendable func get(_ req: ScanPath, _ ctx: CallContext) async throws -> ScanView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        return try ScanRows.view(try await load(p, req.scanId))
    }

    @Sendable func progress(_ req: ScanPath, _ ctx: CallContext) async throws -> ScanProgress {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        let scan = try ScanRows.view(try await load(p, req.scanId))
        let parts = try await store.query(
            p.scope, "SELECT * FROM scans.scan_parts WHERE scan_id = $1 AND tenant_id = $2 ORDER BY service, region",
            [scan.id, p.tenantId]
        ).map(ScanRows.part)
        let done = parts.filter { ["completed", "failed", "unavailable"].contains($0.status) }.count
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

    @Sendable func cancel(_ req: ScanPath, _ ctx: CallContext) async throws -> ScanView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .analyst)
        let id = try Validate.id(req.scanId, "scan")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let current = try await tx.one("SELECT status FROM scans.scans WHERE id = $1 AND tenant_id = $2 FOR UPDATE", [id, p.tenantId])
            else {
                throw ServiceError.notFound("scan")
            }
            let status = try current.string("status")
            guard !ScanStatus.terminal.contains(status) else { throw ServiceError.conflict("scan is already \(status)", code: "scan_finished") }
            let row = try await tx.one(
                """
                UPDATE scans.scans SET status = 'canceled', completed_at = now(), error = $3 WHERE id = $1 AND tenant_id = $2 RETURNING *
                """, [id, p.tenantId, "canceled by \(p.actorId)"])!
            let scan = try ScanRows.view(row)
            let parts = try await tx.query("SELECT * FROM scans.scan_parts WHERE scan_id = $1", [id]).map(ScanRows.part)
            try await ScanRows.emitFinished(tx, scan, tenantId: p.tenantId, parts: parts)
            return scan
        }
    }

    @Sendable func results(_ req: ScanResultsRequest, _ ctx: CallContext) async throws -> Page<ScanResultView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .viewer)
        let scan = try ScanRows.view(try await load(p, req.scanId))
        let page = try Pagination(PageRequest(limit: req.limit, cursor: req.cursor, offset: req.offset))
        var filter = "tenant_id = $1 AND scan_id = $2"
        var values: [any SQLParameter] = [p.tenantId, scan.id]
        if let s = req.status {
            guard ["PASS", "FAIL"].contains(s.uppercased()) else { throw ServiceError.validation("query.status", "must be PASS or FAIL") }
            values.append(s.uppercased())
            filter += " AND status = $\(values.count)"
        }
        if let s = req.severity {
            let wanted = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard wanted.allSatisfy({ Severity(rawValue: $0) != nil }) else {
                throw ServiceError.validation("query.severity", "must be one or more of critical, high, medium, low, info")
            }
            values.append(ArrayParameter(wanted))
            filter += " AND severity = ANY($\(values.count)::text[])"
        }
        if let r = req.ruleId {
            guard r.count <= 200 else { throw ServiceError.validation("query.rule_id", "must be at most 200 characters") }
            values.append(r)
            filter += " AND rule_id = $\(values.count)"
        }
        return try await store.transaction(p.scope) { tx in
            try await page.list(tx, from: "scans.scan_results", filter: filter, values) { r in
                ScanResultView(
                    id: try r.string("id"), fingerprint: try r.string("fingerprint"), ruleId: try r.string("rule_id"),
                    status: try r.string("status"), severity: try r.string("severity"), title: try r.string("title"),
                    resourceId: try r.string("resource_id"), resourceType: try r.string("resource_type"),
                    resourceName: try r.string("resource_name"), region: try r.string("region"), service: try r.string("service"),
                    evidence: try r.json("evidence"), estimatedMonthlySavings: r.optionalString("savings").flatMap(Double.init),
                    createdAt: try r.date("created_at"))
            }
        }
    }
}
