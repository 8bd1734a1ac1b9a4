import Bus
import Contracts
import Foundation
import Net
import ServiceRuntime
import Store
import VigilCore

struct WebScanRequest: Codable, Sendable {
    var target: String?
    var mode: String?
}
struct WebScanReply: Codable, Sendable {
    var id: String
    var status: String
    var target: String
    var mode: String
    var connectionId: String
}

/// FixVibe's scan routes over Vigil's own: `POST /scans {target, mode}` finds the workspace's web
/// connection for the URL (or creates one, within the connection quota) and queues a scan of it, and
/// `GET /scans/{id}` of a web scan carries the target, the mode, failing checks by category and, with
/// `include_findings=true`, the failing checks. Active mode (crafted probes: TRACE, open redirects,
/// reflected input) needs the target's domain verified (`/domains`) and a plan with `active_web_scans`;
/// otherwise `403 active_scan_not_authorized`.
struct WebScanHandlers: Sendable {
    let connections: ConnectionHandlers
    let scans: ScanHandlers
    let bus: BusConnection

    struct PlanLimits: Codable, Sendable {
        var plan: String
        var features: [String]
    }

    func register(on r: ServiceResponder) {
        r.add(Endpoint<WebScanRequest, WebScanReply>(Subjects.Scans.scanSubmit), handler: submit)
    }

    @Sendable func submit(_ q: WebScanRequest, _ p: Principal, _ ctx: CallContext) async throws -> WebScanReply {
        guard let target = q.target?.trimmingCharacters(in: .whitespaces), !target.isEmpty else {
            throw ServiceError.validation("body.target", "field required: the URL to scan")
        }
        let mode = q.mode ?? "passive"
        guard ["passive", "active"].contains(mode) else { throw ServiceError.validation("body.mode", "must be passive or active") }
        let settings = try await connections.validateWeb(ConnectionSettings(url: target))
        if mode == "active" { try await authorizeActive(settings.url ?? target, tenantId: p.tenantId) }
        let url = settings.url ?? target
        let existing = try await connections.connections.findWeb(url: url, tenantId: p.tenantId)
        let connectionId: String
        if let existing {
            connectionId = existing
        } else {
            let name = URL(string: url)?.host ?? url
            connectionId =
                try await connections.create(
                    ConnectionRequest(name: String(name.prefix(100)), provider: "web", settings: settings), p, ctx
                ).id
        }
        let scan = try await scans.triggerOne(TriggerScanRequest(connectionId: connectionId, regions: nil, services: nil, mode: mode), p, ctx)
        return WebScanReply(id: scan.id, status: scan.status, target: url, mode: mode, connectionId: connectionId)
    }

    /// The target's host (with its port unless the default) must be a verified domain of the workspace,
    /// and the plan must include active web scans.
    func authorizeActive(_ url: String, tenantId: String) async throws {
        guard let u = URL(string: url), let host = u.host?.lowercased() else { throw ServiceError.validation("body.target", "not a URL") }
        let domain = u.port.map { "\(host):\($0)" } ?? host
        guard try await DomainStore(db: connections.store).isVerified(domain: domain, tenantId: tenantId) else {
            throw ServiceError(
                status: 403, error: "active_scan_not_authorized",
                message: "active scans need \(domain) verified first: POST /api/v1/domains, publish the token, then POST /api/v1/domains/{id}/verify")
        }
        let limits = try await bus.request(
            Endpoint<Empty, PlanLimits>(Subjects.Billing.planLimits), Empty(), context: CallContext(tenantId: tenantId))
        guard limits.features.contains("active_web_scans") else {
            throw ServiceError(
                status: 403, error: "active_scan_not_authorized",
                message: "the \(limits.plan) plan does not include active web scans; upgrade to use them")
        }
    }

    /// Rule ids are `web.<category>.<check>`: the category is the second part.
    static func category(_ ruleId: String) -> String {
        let parts = ruleId.split(separator: ".")
        return parts.count >= 3 ? String(parts[1]) : "other"
    }

    static func decorate(
        _ scan: ScanView, connection c: StoredConnection, store: ScanStore, tenantId: String, withFindings: Bool
    ) async throws
        -> ScanView
    {
        var v = scan
        v.targetUrl = c.settings.url
        v.targetHostname = c.settings.url.flatMap { URL(string: $0)?.host }
        let failing = try await store.failing(tenantId: tenantId, scanId: scan.id, limit: 2000)
        var categories: [String: FindingsCount] = [:]
        for r in failing {
            var counts = categories[category(r.ruleId)] ?? FindingsCount()
            switch r.severity {
            case "critical": counts.critical += 1
            case "high": counts.high += 1
            case "medium": counts.medium += 1
            case "low": counts.low += 1
            default: counts.info += 1
            }
            categories[category(r.ruleId)] = counts
        }
        v.categories = categories
        if withFindings { v.findings = failing }
        return v
    }
}
