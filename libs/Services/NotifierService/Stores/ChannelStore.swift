import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

/// Every statement on `notifier.channels`, `notifier.channel_sends` and `notifier.policies`: a
/// workspace's notification channels, which events each already got, and its notification policy.
struct ChannelStore: Sendable {
    let db: Store

    static func view(_ r: Row) throws -> ChannelView {
        ChannelView(
            id: try r.string("id"), name: try r.string("name"), method: try r.string("method"),
            config: try r.json("config"), enabled: try r.bool("enabled"), events: try r.stringArray("events"),
            minSeverity: r.optionalString("min_severity"), createdAt: try r.date("created_at"), updatedAt: try r.date("updated_at"))
    }

    /// A channel as the dispatcher uses it: what it subscribes to and its sealed configuration.
    struct Stored {
        var id: String
        var method: String
        var events: [String]
        var minSeverity: String?
        var sealedConfig: [UInt8]
    }

    static func stored(_ r: Row) throws -> Stored {
        Stored(
            id: try r.string("id"), method: try r.string("method"), events: try r.stringArray("events"),
            minSeverity: r.optionalString("min_severity"), sealedConfig: Array(try r.bytes("secret_sealed")))
    }

    struct New {
        var id: String
        var tenantId: String
        var name: String
        var method: String
        var config: [String: String]
        var sealedConfig: Data
        var enabled: Bool
        var events: [String]
        var minSeverity: String?
    }

    func insert(_ tx: Transaction, _ c: New) async throws -> ChannelView {
        try Self.view(
            try await tx.single(
                """
                INSERT INTO notifier.channels (id, tenant_id, name, method, config, secret_sealed, enabled, events, min_severity)
                VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8::text[], $9) RETURNING *
                """,
                [c.id, c.tenantId, c.name, c.method, try JSONParameter(c.config), c.sealedConfig, c.enabled, c.events, c.minSeverity]))
    }

    func method(id: String, tenantId: String) async throws -> String? {
        try await db.query(.tenant(tenantId), "SELECT method FROM notifier.channels WHERE id = $1 AND tenant_id = $2", [id, tenantId])
            .first?.string("method")
    }

    struct Change {
        var name: String?
        var enabled: Bool?
        var events: [String]?
        var minSeverity: String?
        var config: [String: String]?
        var sealedConfig: Data?
    }

    func update(_ tx: Transaction, id: String, tenantId: String, _ c: Change) async throws -> ChannelView? {
        try await tx.one(
            """
            UPDATE notifier.channels SET name = coalesce($3, name), enabled = coalesce($4, enabled),
              events = coalesce($5::text[], events), min_severity = coalesce($6, min_severity),
              config = coalesce($7::jsonb, config), secret_sealed = coalesce($8, secret_sealed), updated_at = now()
            WHERE id = $1 AND tenant_id = $2 RETURNING *
            """,
            [id, tenantId, c.name, c.enabled, c.events, c.minSeverity, try c.config.map { try JSONParameter($0) }, c.sealedConfig]
        ).map(Self.view)
    }

    func list(_ page: Pagination, tenantId: String) async throws -> Page<ChannelView> {
        try await db.transaction(.tenant(tenantId)) { tx in
            try await page.list(tx, from: "notifier.channels", filter: "tenant_id = $1", [tenantId], map: Self.view)
        }
    }

    func delete(id: String, tenantId: String) async throws -> Bool {
        try await db.query(.tenant(tenantId), "DELETE FROM notifier.channels WHERE id = $1 AND tenant_id = $2 RETURNING id", [id, tenantId])
            .first != nil
    }

    func find(id: String, tenantId: String) async throws -> Stored? {
        try await db.query(.tenant(tenantId), "SELECT * FROM notifier.channels WHERE id = $1 AND tenant_id = $2", [id, tenantId]).first
            .map(Self.stored)
    }

    func hasEnabledChannel(tenantId: String) async throws -> Bool {
        try await db.query(.tenant(tenantId), "SELECT 1 FROM notifier.channels WHERE tenant_id = $1 AND enabled LIMIT 1", [tenantId])
            .first != nil
    }

    /// The enabled channels each of `eventIds` is still owed, by event id: one query for a batch's events.
    func pending(tenantId: String, eventIds: [String]) async throws -> [String: [Stored]] {
        var out: [String: [Stored]] = [:]
        for r in try await db.query(
            .tenant(tenantId),
            """
            SELECT c.*, e.id::text AS owed_event FROM notifier.channels c CROSS JOIN unnest($2::uuid[]) AS e(id)
            WHERE c.tenant_id = $1 AND c.enabled
              AND NOT EXISTS (SELECT 1 FROM notifier.channel_sends s WHERE s.channel_id = c.id AND s.event_id = e.id)
            ORDER BY c.created_at, c.id
            """, [tenantId, ArrayParameter(eventIds)])
        {
            out[try r.string("owed_event"), default: []].append(try Self.stored(r))
        }
        return out
    }

    /// Notes that a channel was sent an event (a redelivered event is not sent again).
    func recordSend(tenantId: String, channelId: String, eventId: String) async throws {
        try await db.query(
            .tenant(tenantId),
            "INSERT INTO notifier.channel_sends (tenant_id, channel_id, event_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [tenantId, channelId, eventId])
    }

    // MARK: policy

    func policy(tenantId: String) async throws -> NotificationPolicy? {
        try await db.query(.tenant(tenantId), "SELECT * FROM notifier.policies WHERE tenant_id = $1", [tenantId]).first.map { r in
            NotificationPolicy(
                delivery: try r.string("delivery"), notificationTriggerMode: try r.string("trigger_mode"), updatedAt: r.optionalDate("updated_at"))
        }
    }

    func savePolicy(tenantId: String, delivery: String, triggerMode: String) async throws {
        try await db.query(
            .tenant(tenantId),
            """
            INSERT INTO notifier.policies (tenant_id, delivery, trigger_mode) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id) DO UPDATE SET delivery = $2, trigger_mode = $3, updated_at = now()
            """, [tenantId, delivery, triggerMode])
    }
}
