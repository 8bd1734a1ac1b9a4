import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `notifier.webhook_endpoints`, `notifier.webhook_deliveries` and
/// `notifier.webhook_attempts`: the endpoints a workspace registered, the deliveries queued for them and
/// the log of every attempt, for the API (create, list, rotate, test, redeliver) and the dispatcher
/// (fan-out, claim, record).
struct WebhookStore: Sendable {
    let db: Store

    static func endpoint(_ r: Row) throws -> EndpointView {
        EndpointView(
            id: try r.string("id"), url: try r.string("url"), description: r.optionalString("description"),
            events: try r.stringArray("events"), minSeverity: r.optionalString("min_severity"),
            connectionIds: r.isNull("connection_ids") ? nil : try r.stringArray("connection_ids"),
            isActive: try r.bool("is_active"), disabledReason: r.optionalString("disabled_reason"),
            createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"), secret: nil,
            findingDelivery: try r.string("finding_delivery"))
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

    // MARK: endpoints

    /// Registers the endpoint a validated request describes, with its sealed signing secret.
    func insert(_ tx: Transaction, id: String, tenantId: String, _ e: CreateEndpointRequest, sealedSecret: Data) async throws -> EndpointView {
        try Self.endpoint(
            try await tx.single(
                """
                INSERT INTO notifier.webhook_endpoints (id, tenant_id, url, description, events, min_severity, connection_ids, is_active,
                  secret_sealed, finding_delivery)
                VALUES ($1, $2, $3, $4, $5::text[], $6, $7::text[], $8, $9, $10) RETURNING *
                """,
                [
                    id, tenantId, e.url, e.description, e.events, e.minSeverity, e.connectionIds, e.isActive ?? true, sealedSecret,
                    e.findingDelivery ?? "per_finding",
                ]))
    }

    func list(_ page: Pagination, tenantId: String) async throws -> Page<EndpointView> {
        try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "notifier.webhook_endpoints", filter: "tenant_id = $1", [tenantId], map: Self.endpoint)
        }
    }

    func delete(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.execute("DELETE FROM notifier.webhook_endpoints WHERE id = $1 AND tenant_id = $2", [id, tenantId]) == 1
    }

    func exists(_ tx: Transaction, id: String, tenantId: String) async throws -> Bool {
        try await tx.one("SELECT 1 FROM notifier.webhook_endpoints WHERE id = $1 AND tenant_id = $2", [id, tenantId]) != nil
    }

    /// Installs a new signing secret; the previous one keeps signing for `overlapSeconds`. Returns when it stops.
    func rotateSecret(_ tx: Transaction, id: String, tenantId: String, sealed: Data, overlapSeconds: Int) async throws -> Date? {
        try await tx.one(
            """
            UPDATE notifier.webhook_endpoints SET previous_secret_sealed = secret_sealed, secret_sealed = $3,
              previous_secret_expires_at = now() + make_interval(secs => $4), updated_at = now()
            WHERE id = $1 AND tenant_id = $2 RETURNING previous_secret_expires_at
            """, [id, tenantId, sealed, overlapSeconds]
        ).map { try $0.date("previous_secret_expires_at") }
    }

    func hasActiveEndpoint(tenantId: String) async throws -> Bool {
        try await db.query(
            .tenant(tenantId), "SELECT 1 FROM notifier.webhook_endpoints WHERE tenant_id = $1 AND is_active LIMIT 1", [tenantId]
        ).first != nil
    }

    /// What an active endpoint subscribes to.
    struct Subscription {
        var id: String
        var events: [String]
        var minSeverity: String?
        var connectionIds: [String]?
        var findingDelivery: String

        /// Whether an event of `type` with `data` (its severity and connection) goes to this endpoint.
        func wants(_ type: String, _ data: [String: Any]) -> Bool {
            guard EventCatalog.matches(events, type) else { return false }
            if let min = minSeverity, let sev = data["severity"] as? String,
                (EventCatalog.severities.firstIndex(of: sev) ?? 0) < (EventCatalog.severities.firstIndex(of: min) ?? 0)
            {
                return false
            }
            if let ids = connectionIds, let conn = data["connection_id"] as? String, !ids.contains(conn) { return false }
            return true
        }
    }

    func activeSubscriptions(tenantId: String) async throws -> [Subscription] {
        try await db.query(
            .tenant(tenantId),
            """
            SELECT id, events, min_severity, connection_ids, finding_delivery FROM notifier.webhook_endpoints WHERE tenant_id = $1 AND is_active
            """,
            [tenantId]
        ).map { e in
            Subscription(
                id: try e.string("id"), events: try e.stringArray("events"), minSeverity: e.optionalString("min_severity"),
                connectionIds: e.isNull("connection_ids") ? nil : try e.stringArray("connection_ids"),
                findingDelivery: try e.string("finding_delivery"))
        }
    }

    // MARK: deliveries

    /// One delivery per endpoint for an event (a repeat of the same event and endpoint is ignored); returns how many are new.
    struct NewDelivery {
        var endpointId: String
        var eventId: String
        var eventType: String
        var payload: String
    }

    /// Queues deliveries in one statement; one already queued for its endpoint and event is left as it is.
    func enqueue(tenantId: String, _ rows: [NewDelivery]) async throws -> Int {
        try await db.query(
            .tenant(tenantId),
            """
            INSERT INTO notifier.webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, payload)
            SELECT gen_random_uuid(), $1, e, i, t, p FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[]) AS x(e, i, t, p)
            ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id
            """,
            [
                tenantId, ArrayParameter(rows.map(\.endpointId)), ArrayParameter(rows.map(\.eventId)), ArrayParameter(rows.map(\.eventType)),
                ArrayParameter(rows.map(\.payload)),
            ]
        ).count
    }

    /// A test delivery, attempted at once by the caller (the lease keeps the dispatcher off it meanwhile).
    func enqueueTest(_ tx: Transaction, id: String, tenantId: String, endpointId: String, eventId: String, payload: String) async throws {
        try await tx.execute(
            """
            INSERT INTO notifier.webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, payload, next_attempt_at)
            VALUES ($1, $2, $3, $4, 'webhook.test', $5, now() + interval '1 hour')
            """, [id, tenantId, endpointId, eventId, payload])
    }

    func delivery(id: String, tenantId: String) async throws -> DeliveryView? {
        try await db.query(.tenant(tenantId), "SELECT * FROM notifier.webhook_deliveries WHERE id = $1 AND tenant_id = $2", [id, tenantId])
            .first.map(Self.delivery)
    }

    func deliveries(_ tx: Transaction, _ page: Pagination, endpointId: String, tenantId: String) async throws -> Page<DeliveryView> {
        try await page.list(
            tx, from: "notifier.webhook_deliveries", filter: "endpoint_id = $1 AND tenant_id = $2", [endpointId, tenantId], map: Self.delivery)
    }

    /// Queues a delivery again from scratch; false when it does not exist in the workspace.
    func requeue(id: String, tenantId: String) async throws -> Bool {
        try await db.query(
            .tenant(tenantId),
            """
            UPDATE notifier.webhook_deliveries SET status = 'pending', next_attempt_at = now(), attempts = 0
            WHERE id = $1 AND tenant_id = $2 RETURNING id
            """, [id, tenantId]
        ).first != nil
    }

    /// Deliveries that failed for good (attempts exhausted or the endpoint refused), newest first, in
    /// every workspace: for the platform's operators (`/ops/failures`), without payloads.
    func failedDeliveries(limit: Int) async throws -> [[String: Any]] {
        try await db.query(
            .crossTenant,
            """
            SELECT id::text, tenant_id::text, endpoint_id::text, event_id::text, event_type, attempts, last_status, last_error,
              to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at
            FROM notifier.webhook_deliveries WHERE status = 'failed' ORDER BY created_at DESC LIMIT $1
            """, [limit]
        ).map { r in
            var o: [String: Any] = [
                "id": try r.string("id"), "tenant_id": try r.string("tenant_id"), "endpoint_id": try r.string("endpoint_id"),
                "event_id": try r.string("event_id"), "event_type": try r.string("event_type"), "attempts": try r.int("attempts"),
                "created_at": try r.string("created_at"),
            ]
            if let s = r.optionalInt("last_status") { o["last_status"] = s }
            if let e = r.optionalString("last_error") { o["last_error"] = e }
            return o
        }
    }

    /// Queues a failed delivery again in whichever workspace it is; false when there is no such failed delivery.
    func requeueFailed(id: String) async throws -> Bool {
        try await db.query(
            .crossTenant,
            """
            UPDATE notifier.webhook_deliveries SET status = 'pending', next_attempt_at = now(), attempts = 0
            WHERE id = $1 AND status = 'failed' RETURNING id
            """, [id]
        ).first != nil
    }

    /// What a send needs: the delivery, its endpoint URL and the sealed secrets still valid.
    static let dueColumns = """
        d.id, d.tenant_id, d.endpoint_id, d.payload, d.attempts, e.url, e.secret_sealed,
        CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret_sealed END AS previous_sealed
        """

    func due(id: String) async throws -> WebhookDispatcher.Due? {
        try await db.query(
            .crossTenant,
            """
            SELECT \(Self.dueColumns)
            FROM notifier.webhook_deliveries d JOIN notifier.webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1
            """, [id]
        ).first.map(WebhookDispatcher.Due.init)
    }

    /// Leases up to `limit` due deliveries (every workspace) for `leaseMs`; another replica skips them meanwhile.
    func claim(limit: Int, leaseMs: Int) async throws -> [WebhookDispatcher.Due] {
        try await db.transaction(.crossTenant) { tx in
            try await tx.query(
                """
                UPDATE notifier.webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2::double precision / 1000)
                FROM notifier.webhook_endpoints e
                WHERE d.endpoint_id = e.id AND d.id IN (
                  SELECT id FROM notifier.webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                RETURNING \(Self.dueColumns)
                """, [limit, leaseMs]
            ).map(WebhookDispatcher.Due.init)
        }
    }

    /// Columns of a batch of attempts, one array per column (see `record`).
    struct AttemptColumns {
        var tenantIds: ArrayParameter
        var deliveryIds: ArrayParameter
        var statuses: ArrayParameter
        var latencies: ArrayParameter
        var errors: ArrayParameter
        var excerpts: ArrayParameter
        var outcomes: ArrayParameter
        var delays: ArrayParameter
    }

    /// Appends the attempts to the log and moves each delivery on (delivered, failed, or pending again after its delay).
    func recordAttempts(_ tx: Transaction, _ c: AttemptColumns) async throws {
        try await tx.execute(
            """
            INSERT INTO notifier.webhook_attempts (tenant_id, delivery_id, status, latency_ms, error, response_excerpt)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::int[], $5::text[], $6::text[])
            """, [c.tenantIds, c.deliveryIds, c.statuses, c.latencies, c.errors, c.excerpts])
        try await tx.execute(
            """
            UPDATE notifier.webhook_deliveries d SET attempts = d.attempts + 1, last_status = u.status, last_error = u.error,
              last_response = u.excerpt, last_latency_ms = u.latency,
              status = CASE WHEN u.outcome = 'retry' THEN 'pending' ELSE u.outcome END,
              delivered_at = CASE WHEN u.outcome = 'delivered' THEN now() END,
              next_attempt_at = now() + make_interval(secs => u.delay::double precision / 1000)
            FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::int[], $6::text[], $7::int[])
              AS u(id, status, error, excerpt, latency, outcome, delay)
            WHERE d.id = u.id
            """, [c.deliveryIds, c.statuses, c.errors, c.excerpts, c.latencies, c.outcomes, c.delays])
    }

    /// An endpoint's health after a batch: consecutive failures and whether it is still active.
    struct Health {
        var id: String
        var tenantId: String
        var consecutiveFailures: Int
        var isActive: Bool
    }

    /// Resets (any success in the batch) or adds to each endpoint's consecutive failures.
    func updateHealth(_ tx: Transaction, endpointIds: [String], reset: [Bool], failures: [Int]) async throws -> [Health] {
        try await tx.query(
            """
            UPDATE notifier.webhook_endpoints e
              SET consecutive_failures = CASE WHEN u.reset THEN 0 ELSE e.consecutive_failures END + u.failures
            FROM unnest($1::uuid[], $2::bool[], $3::int[]) AS u(id, reset, failures)
            WHERE e.id = u.id RETURNING e.id, e.tenant_id, e.consecutive_failures, e.is_active
            """, [ArrayParameter(endpointIds), ArrayParameter(reset.map { $0 ? "t" : "f" }), ArrayParameter(failures.map(String.init))]
        ).map { r in
            Health(
                id: try r.string("id"), tenantId: try r.string("tenant_id"), consecutiveFailures: try r.int("consecutive_failures"),
                isActive: try r.bool("is_active"))
        }
    }

    func disable(_ tx: Transaction, id: String, reason: String) async throws {
        try await tx.execute(
            "UPDATE notifier.webhook_endpoints SET is_active = false, disabled_reason = $2, updated_at = now() WHERE id = $1", [id, reason])
    }
}
