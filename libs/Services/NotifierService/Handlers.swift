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

    static func endpoint(_ r: Row) throws -> EndpointView {
        EndpointView(
            id: try r.string("id"), url: try r.string("url"), description: r.optionalString("description"),
            events: try r.stringArray("events"), minSeverity: r.optionalString("min_severity"),
            connectionIds: r.isNull("connection_ids") ? nil : try r.stringArray("connection_ids"),
            isActive: try r.bool("is_active"), disabledReason: r.optionalString("disabled_reason"),
            createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"), secret: nil)
    }

    static func delivery(_ r: Row) throws -> DeliveryView {
        let status = try r.string("status")
        return DeliveryView(
            id: try r.string("id"), endpointId: try r.string("endpoint_id"), eventId: try r.string("event_id"),
            eventType: try r.string("event_type"), status: status, attempts: try r.int("attempts"),
            lastStatus: r.optionalInt("last_status"), lastError: r.optionalString("last_error"),
            lastResponse: r.optionalString("last_response"), lastLatencyMs: r.optionalInt("last_latency_ms"),
            createdAt: try r.date("created_at"), deliveredAt: r.optionalDate("delivered_at"),
            nextAttemptAt: status == "pending" ? r.optionalDate("next_attempt_at") : nil)
    }

    @Sendable func create(_ req: CreateEndpointRequest, _ ctx: CallContext) async throws -> EndpointView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
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
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        // Resolve now too: a URL that points at a refused address is rejected at creation.
        let guardrail = dispatcher.settings.guardrail
        do { _ = try await Blocking.run { try guardrail.check(req.url) } } catch {
            throw ServiceError.validation("body.url", "\(error)")
        }
        let secret = req.secret ?? WebhookSignature.newSecret()
        let sealed = Data(Sodium.seal(Array(secret.utf8), to: dispatcher.settings.keys.publicKey))
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let row = try await tx.one(
                """
                INSERT INTO notifier.webhook_endpoints (id, tenant_id, url, description, events, min_severity, connection_ids, is_active,
                  secret_sealed)
                VALUES ($1, $2, $3, $4, $5::text[], $6, $7::text[], $8, $9) RETURNING *
                """,
                [
                    ID.make(), p.tenantId, req.url, req.description, req.events, req.minSeverity, req.connectionIds,
                    req.isActive ?? true, sealed,
                ])!
            var view = try Self.endpoint(row)
            view.secret = secret
            try await tx.emit(
                Events.webhookEndpointCreated, tenantId: p.tenantId,
                data: ["endpoint_id": view.id, "actor": p.actorId])
            return view
        }
    }

    @Sendable func list(_ req: PageRequest, _ ctx: CallContext) async throws -> Page<EndpointView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let page = try Pagination(req)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await page.list(tx, from: "notifier.webhook_endpoints", filter: "tenant_id = $1", [p.tenantId], map: Self.endpoint)
        }
    }

    @Sendable func delete(_ req: EndpointPath, _ ctx: CallContext) async throws -> Empty {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await tx.execute("DELETE FROM notifier.webhook_endpoints WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]) == 1 else {
                throw ServiceError.notFound("webhook endpoint")
            }
            try await tx.emit(
                Events.webhookEndpointDeleted, tenantId: p.tenantId,
                data: ["endpoint_id": id, "actor": p.actorId])
            return Empty()
        }
    }

    @Sendable func rotate(_ req: RotateSecretRequest, _ ctx: CallContext) async throws -> SecretReply {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        let overlap = req.overlapSeconds ?? 86400
        guard (0...7 * 86400).contains(overlap) else { throw ServiceError.validation("body.overlap_seconds", "must be 0 to 604800") }
        let secret = WebhookSignature.newSecret()
        let sealed = Data(Sodium.seal(Array(secret.utf8), to: dispatcher.settings.keys.publicKey))
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let row = try await tx.one(
                    """
                    UPDATE notifier.webhook_endpoints SET previous_secret_sealed = secret_sealed, secret_sealed = $3,
                      previous_secret_expires_at = now() + make_interval(secs => $4), updated_at = now()
                    WHERE id = $1 AND tenant_id = $2 RETURNING previous_secret_expires_at
                    """, [id, p.tenantId, sealed, overlap])
            else { throw ServiceError.notFound("webhook endpoint") }
            return SecretReply(secret: secret, previousSecretExpiresAt: try row.date("previous_secret_expires_at"))
        }
    }

    @Sendable func test(_ req: EndpointPath, _ ctx: CallContext) async throws -> DeliveryView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        let eventId = ID.make()
        let payload = try WebhookDispatcher.payload(
            type: "webhook.test", occurredAt: nil,
            data: ["endpoint_id": id, "message": "This is a test delivery from Vigil."])
        let deliveryId = ID.make()
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await tx.one("SELECT 1 FROM notifier.webhook_endpoints WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]) != nil else {
                throw ServiceError.notFound("webhook endpoint")
            }
            try await tx.execute(
                """
                INSERT INTO notifier.webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, payload, next_attempt_at)
                VALUES ($1, $2, $3, $4, 'webhook.test', $5, now() + interval '1 hour')
                """, [deliveryId, p.tenantId, id, eventId, payload])
        }
        // Attempt right away so the caller sees the result.
        if let due = try await loadDue(deliveryId) { await dispatcher.attempt(due) }
        return try await loadDelivery(deliveryId, p)
    }

    func loadDue(_ id: String) async throws -> WebhookDispatcher.Due? {
        try await store.query(
            .crossTenant,
            """
            SELECT \(WebhookDispatcher.dueColumns)
            FROM notifier.webhook_deliveries d JOIN notifier.webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1
            """, [id]
        ).first.map(WebhookDispatcher.Due.init)
    }

    func loadDelivery(_ id: String, _ p: Principal) async throws -> DeliveryView {
        guard
            let row = try await store.query(
                p.scope, "SELECT * FROM notifier.webhook_deliveries WHERE id = $1 AND tenant_id = $2",
                [id, p.tenantId]
            ).first
        else { throw ServiceError.notFound("delivery") }
        return try Self.delivery(row)
    }

    @Sendable func deliveries(_ req: EndpointPage, _ ctx: CallContext) async throws -> Page<DeliveryView> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.endpointId, "webhook endpoint")
        let page = try Pagination(PageRequest(limit: req.limit, cursor: req.cursor, offset: req.offset))
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await tx.one("SELECT 1 FROM notifier.webhook_endpoints WHERE id = $1 AND tenant_id = $2", [id, p.tenantId]) != nil else {
                throw ServiceError.notFound("webhook endpoint")
            }
            return try await page.list(
                tx, from: "notifier.webhook_deliveries", filter: "endpoint_id = $1 AND tenant_id = $2",
                [id, p.tenantId], map: Self.delivery)
        }
    }

    @Sendable func redeliver(_ req: DeliveryPath, _ ctx: CallContext) async throws -> DeliveryView {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let id = try Validate.id(req.deliveryId, "delivery")
        guard
            try await store.query(
                p.scope,
                """
                UPDATE notifier.webhook_deliveries SET status = 'pending', next_attempt_at = now(), attempts = 0
                WHERE id = $1 AND tenant_id = $2 RETURNING id
                """, [id, p.tenantId]
            ).first != nil
        else { throw ServiceError.notFound("delivery") }
        dispatcher.poke()
        return try await loadDelivery(id, p)
    }

    @Sendable func audit(_ q: AuditQuery, _ ctx: CallContext) async throws -> Page<AuditRecord> {
        let p = try ctx.requirePrincipal()
        try p.require(atLeast: .admin)
        let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
        var filter = "tenant_id = $1"
        var values: [any SQLParameter] = [p.tenantId]
        func add(_ clause: String, _ v: any SQLParameter) {
            values.append(v)
            filter += " AND " + clause.replacingOccurrences(of: "?", with: "$\(values.count)")
        }
        if let a = q.action { add("action = ?", a) }
        if let t = q.resourceType { add("resource_type = ?", t) }
        if let a = q.actor { add("actor = ?", a) }
        if let s = q.since { add("at >= ?", s) }
        if let u = q.until { add("at < ?", u) }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await page.list(tx, from: "notifier.audit_log", filter: filter, values) { r in
                AuditRecord(
                    id: try r.string("id"), at: try r.date("at"), actor: r.optionalString("actor"), action: try r.string("action"),
                    resourceType: try r.string("resource_type"), resourceId: r.optionalString("resource_id"),
                    workspace: r.optionalString("tenant_id"), correlationId: r.optionalString("correlation_id"),
                    ip: r.optionalString("ip"), userAgent: r.optionalString("user_agent"),
                    changes: JSONObject(raw: Data((r.optionalString("changes") ?? "{}").utf8)))
            }
        }
    }
}
