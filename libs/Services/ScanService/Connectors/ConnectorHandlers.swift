import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

struct EnrollmentCreate: Codable, Sendable {
    var name: String?
    var maxUses: Int?
    var expiresInHours: Int?
}
struct EnrollmentListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var status: String?
}
struct EnrollmentPath: Codable, Sendable { var enrollmentId: String }
struct ConnectorListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var status: String?
    var connectorType: String?
}
struct ConnectorPath: Codable, Sendable { var connectorId: String }

/// Connector settings.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_CONNECTOR_HEARTBEAT_SECONDS | 30 | how often connectors heartbeat; online means seen within 3 intervals |
/// | VIGIL_CONNECTOR_POLL_SECONDS | 10 | how long a poll is held when nothing is queued (at most 8: the gateway's bus timeout is 10) |
/// | VIGIL_CONNECTOR_JOB_TIMEOUT_SECONDS | 600 | how long a scan waits for its connector's result |
struct ConnectorSettings: Sendable {
    var heartbeat: Int
    var pollWait: Int
    var jobTimeout: Int

    init(_ r: ConfigReader) {
        heartbeat = max(1, r.int("VIGIL_CONNECTOR_HEARTBEAT_SECONDS", default: 30))
        pollWait = min(8, max(0, r.int("VIGIL_CONNECTOR_POLL_SECONDS", default: 8)))
        jobTimeout = max(5, r.int("VIGIL_CONNECTOR_JOB_TIMEOUT_SECONDS", default: 600))
    }

    var onlineWithin: TimeInterval { TimeInterval(heartbeat * 3) }
}

/// The `connectors` routes people use: enrollment tokens (shown once, stored hashed, single- or
/// multi-use, expiring, revocable) and the connectors registered with them (status, jobs, revoke).
struct ConnectorHandlers: Sendable {
    let store: Store
    let settings: ConnectorSettings
    var connectors: ConnectorStore { ConnectorStore(db: store, onlineWithin: settings.onlineWithin) }
    static let tokenPrefix = "vce_"
    static let enrollmentStatuses = ["active", "revoked", "expired", "exhausted"]
    static let connectorStatuses = ["pending", "online", "offline", "revoked"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<EnrollmentCreate, EnrollmentView>(Subjects.Scans.enrollmentCreate), handler: createEnrollment)
        r.add(Endpoint<EnrollmentListRequest, Page<EnrollmentView>>(Subjects.Scans.enrollmentList)) { q, p, _ in
            let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
            let status = try Validate.list(q.status, path: "query.status", allowed: Self.enrollmentStatuses)?.first
            return try await connectors.enrollments(page, tenantId: p.tenantId, status: status)
        }
        r.add(Endpoint<EnrollmentPath, Empty>(Subjects.Scans.enrollmentRevoke)) { q, p, ctx in
            let id = try Validate.id(q.enrollmentId, "enrollment").lowercased()
            return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
                guard try await ConnectorStore.revokeEnrollment(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("enrollment") }
                try await tx.emit(Events.connectorEnrollmentRevoked, tenantId: p.tenantId, data: ["enrollment_id": id, "actor": p.actorId])
                return Empty()
            }
        }
        r.add(Endpoint<ConnectorListRequest, Page<ConnectorView>>(Subjects.Scans.connectorList)) { q, p, _ in
            let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
            let status = try Validate.list(q.status, path: "query.status", allowed: Self.connectorStatuses)?.first
            let type = try Validate.list(q.connectorType, path: "query.connector_type", allowed: ["linux"])?.first
            return try await connectors.list(page, tenantId: p.tenantId, status: status, type: type)
        }
        r.add(Endpoint<ConnectorPath, ConnectorView>(Subjects.Scans.connectorGet)) { q, p, _ in
            guard let c = try await connectors.get(id: try Validate.id(q.connectorId, "connector").lowercased(), tenantId: p.tenantId) else {
                throw ServiceError.notFound("connector")
            }
            return c
        }
        r.add(Endpoint<ConnectorPath, ConnectorView>(Subjects.Scans.connectorRevoke), handler: revoke)
    }

    @Sendable func createEnrollment(_ q: EnrollmentCreate, _ p: Principal, _ ctx: CallContext) async throws -> EnrollmentView {
        var issues: [ValidationIssue] = []
        let name = (try? Validate.text(q.name ?? "", path: "body.name", max: 100)) ?? ""
        if name.isEmpty { issues.append(.init(path: "body.name", message: "must be 1 to 100 characters")) }
        if let m = q.maxUses, !(1...10_000).contains(m) { issues.append(.init(path: "body.max_uses", message: "must be between 1 and 10000")) }
        let hours = q.expiresInHours ?? 24
        if !(1...720).contains(hours) { issues.append(.init(path: "body.expires_in_hours", message: "must be between 1 and 720 (30 days)")) }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let token = SecretToken.generate(prefix: Self.tokenPrefix)
        let id = ID.make()
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            var view = try await ConnectorStore.insertEnrollment(
                tx, tenantId: p.tenantId,
                .init(
                    id: id, name: name, tokenHash: SecretToken.hash(token), tokenPrefix: SecretToken.displayPrefix(token, prefix: Self.tokenPrefix),
                    maxUses: q.maxUses ?? 1, expiresAt: Date().addingTimeInterval(TimeInterval(hours * 3600)), createdBy: p.actorId))
            try await tx.emit(Events.connectorEnrollmentCreated, tenantId: p.tenantId, data: ["enrollment_id": id, "actor": p.actorId])
            view.token = token
            return view
        }
    }

    @Sendable func revoke(_ q: ConnectorPath, _ p: Principal, _ ctx: CallContext) async throws -> ConnectorView {
        let id = try Validate.id(q.connectorId, "connector").lowercased()
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let (found, cancelled) = try await ConnectorStore.revoke(tx, id: id, tenantId: p.tenantId)
            guard found else { throw ServiceError.notFound("connector") }
            try await tx.emit(
                Events.connectorRevoked, tenantId: p.tenantId, data: ["connector_id": id, "cancelled_jobs": String(cancelled), "actor": p.actorId])
        }
        guard let c = try await connectors.get(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("connector") }
        return c
    }
}
