import Bus
import Contracts
import Foundation
import Net
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

struct CreateEndpointRequest: Codable, Sendable {
    var url: String
    var events: [String]
    var description: String?
    var minSeverity: String?
    var connectionIds: [String]?
    var isActive: Bool?
    var secret: String?
    var findingDelivery: String?
}
struct EndpointView: Codable, Sendable {
    var id: String
    var url: String
    var description: String?
    var events: [String]
    var minSeverity: String?
    var connectionIds: [String]?
    var isActive: Bool
    var disabledReason: String?
    var createdAt: Date
    var updatedAt: Date
    var secret: String?
    var findingDelivery: String
}
struct EndpointPath: Codable, Sendable { var endpointId: String }
struct EndpointPage: Codable, Sendable {
    var endpointId: String
    var limit: Int?
    var cursor: String?
    var offset: Int?
}
struct RotateSecretRequest: Codable, Sendable {
    var endpointId: String
    var overlapSeconds: Int?
}
struct SecretReply: Codable, Sendable {
    var secret: String
    var previousSecretExpiresAt: Date
}
struct DeliveryPath: Codable, Sendable { var deliveryId: String }
struct DeliveryView: Codable, Sendable {
    var id: String
    var endpointId: String
    var eventId: String
    var eventType: String
    var status: String
    var attempts: Int
    var lastStatus: Int?
    var lastError: String?
    var lastResponse: String?
    var lastLatencyMs: Int?
    var createdAt: Date
    var deliveredAt: Date?
    var nextAttemptAt: Date?
}
struct EventType: Codable, Sendable {
    var type: String
    var description: String
}
struct EventTypes: Codable, Sendable { var items: [EventType] }

struct NotifierHandlers: Sendable {
    let store: Store
    let dispatcher: WebhookDispatcher
    var webhooks: WebhookStore { WebhookStore(db: store) }

    func register(on r: ServiceResponder) {
        r.add(Endpoint<CreateEndpointRequest, EndpointView>(Subjects.Notifier.webhookCreate), handler: create)
        r.add(Endpoint<PageRequest, Page<EndpointView>>(Subjects.Notifier.webhookList), handler: list)
        r.add(Endpoint<EndpointPath, Empty>(Subjects.Notifier.webhookDelete), handler: delete)
        r.add(Endpoint<EndpointPath, DeliveryView>(Subjects.Notifier.webhookTest), handler: test)
        r.add(Endpoint<RotateSecretRequest, SecretReply>(Subjects.Notifier.webhookRotateSecret), handler: rotate)
        r.add(Endpoint<EndpointPage, Page<DeliveryView>>(Subjects.Notifier.deliveryList), handler: deliveries)
        r.add(Endpoint<DeliveryPath, DeliveryView>(Subjects.Notifier.deliveryRedeliver), handler: redeliver)
        r.add(Endpoint<Empty, EventTypes>(Subjects.Notifier.eventTypeList)) { _, _ in
            EventTypes(items: EventCatalog.types.map { EventType(type: $0.0, description: $0.1) })
        }
        r.add(Endpoint<AuditQuery, Page<AuditRecord>>(Subjects.Notifier.auditList), handler: audit)
    }

    @Sendable func create(_ req: CreateEndpointRequest, _ p: Principal, _ ctx: CallContext) async throws -> EndpointView {
        var issues: [ValidationIssue] = []
        do { _ = try SSRFGuard.parse(req.url) } catch { issues.append(.init(path: "body.url", message: "\(error)")) }
        if req.events.isEmpty || req.events.count > 50 || req.events.contains(where: { $0.isEmpty || $0.count > 100 }) {
            issues.append(.init(path: "body.events", message: "must list 1 to 50 event types or patterns (e.g. \"finding.*\")"))
        }
        if let s = req.minSeverity, !EventCatalog.severities.contains(s) {
            issues.append(.init(path: "body.min_severity", message: "must be one of \(EventCatalog.severities.joined(separator: ", "))"))
        }
        if let s = req.secret, WebhookSignature.key(s) == nil {
            issues.append(.init(path: "body.secret", message: "must be whsec_ followed by base64 of 24 to 64 bytes"))
        }
        if let ids = req.connectionIds, ids.contains(where: { !ID.isValid($0) }) {
            issues.append(.init(path: "body.connection_ids", message: "must be connection ids"))
        }
        if let d = req.findingDelivery, !["per_finding", "batch"].contains(d) {
            issues.append(.init(path: "body.finding_delivery", message: "must be per_finding or batch"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        // Resolve now too: a URL that points at a refused address is rejected at creation.
        let guardrail = dispatcher.settings.guardrail
        do { _ = try await Blocking.run { try guardrail.check(req.url) } } catch {
            throw ServiceError.validation("body.url", "\(error)")
        }
        let secret = req.secret ?? WebhookSignature.newSecret()
        let sealed = Data(Sodium.seal(Array(secret.utf8), to: dispatcher.settings.keys.publicKey))
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            var view = try await webhooks.insert(tx, id: ID.make(), tenantId: p.tenantId, req, sealedSecret: sealed)
            view.secret = secret
            try await tx.emit(
                Events.webhookEndpointCreated, tenantId: p.tenantId,
                data: ["endpoint_id": view.id, "actor": p.actorId])
            return view
        }
    }

    @Sendable func list(_ req: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<EndpointView> {
        return try await webhooks.list(try Pagination(req), tenantId: p.tenantId)
    }

    @Sendable func delete(_ req: EndpointPath, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await webhooks.delete(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("webhook endpoint") }
            try await tx.emit(
                Events.webhookEndpointDeleted, tenantId: p.tenantId,
                data: ["endpoint_id": id, "actor": p.actorId])
            return Empty()
        }
    }

    @Sendable func rotate(_ req: RotateSecretRequest, _ p: Principal, _ ctx: CallContext) async throws -> SecretReply {
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        let overlap = req.overlapSeconds ?? 86400
        guard (0...7 * 86400).contains(overlap) else { throw ServiceError.validation("body.overlap_seconds", "must be 0 to 604800") }
        let secret = WebhookSignature.newSecret()
        let sealed = Data(Sodium.seal(Array(secret.utf8), to: dispatcher.settings.keys.publicKey))
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let expires = try await webhooks.rotateSecret(tx, id: id, tenantId: p.tenantId, sealed: sealed, overlapSeconds: overlap)
            else { throw ServiceError.notFound("webhook endpoint") }
            return SecretReply(secret: secret, previousSecretExpiresAt: expires)
        }
    }

    @Sendable func test(_ req: EndpointPath, _ p: Principal, _ ctx: CallContext) async throws -> DeliveryView {
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        let eventId = ID.make()
        let payload = try WebhookDispatcher.payload(
            type: "webhook.test", occurredAt: nil,
            data: ["endpoint_id": id, "message": "This is a test delivery from Vigil."])
        let deliveryId = ID.make()
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await webhooks.exists(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("webhook endpoint") }
            try await webhooks.enqueueTest(tx, id: deliveryId, tenantId: p.tenantId, endpointId: id, eventId: eventId, payload: payload)
        }
        // Attempt right away so the caller sees the result.
        if let due = try await loadDue(deliveryId) { await dispatcher.attempt(due) }
        return try await loadDelivery(deliveryId, p)
    }

    func loadDue(_ id: String) async throws -> WebhookDispatcher.Due? { try await webhooks.due(id: id) }

    func loadDelivery(_ id: String, _ p: Principal) async throws -> DeliveryView {
        guard let d = try await webhooks.delivery(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("delivery") }
        return d
    }

    @Sendable func deliveries(_ req: EndpointPage, _ p: Principal, _ ctx: CallContext) async throws -> Page<DeliveryView> {
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        let page = try Pagination(PageRequest(limit: req.limit, cursor: req.cursor, offset: req.offset))
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await webhooks.exists(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("webhook endpoint") }
            return try await webhooks.deliveries(tx, page, endpointId: id, tenantId: p.tenantId)
        }
    }

    @Sendable func redeliver(_ req: DeliveryPath, _ p: Principal, _ ctx: CallContext) async throws -> DeliveryView {
        let id = try Validate.id(req.deliveryId, "delivery")
        guard try await webhooks.requeue(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("delivery") }
        dispatcher.poke()
        return try await loadDelivery(id, p)
    }

    @Sendable func audit(_ q: AuditQuery, _ p: Principal, _ ctx: CallContext) async throws -> Page<AuditRecord> {
        let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
        return try await AuditStore(db: store).list(page, tenantId: p.tenantId, q)
    }
}
