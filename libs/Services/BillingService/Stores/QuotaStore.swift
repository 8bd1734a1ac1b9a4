import Contracts
import Foundation
import Store

/// Every statement on `billing.usage`, `billing.reservations` and `billing.gauges`: units used and
/// reserved per period, each reservation and how it was settled, and what other services report in use.
struct QuotaStore: Sendable {
    /// Locks (creating it if needed) the period's usage row of a quota and returns its counts.
    func lockUsage(_ tx: Transaction, tenantId: String, periodStart: Date, quota: String) async throws -> (used: Int, reserved: Int) {
        _ = try await tx.execute(
            "INSERT INTO billing.usage (tenant_id, period_start, quota) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [tenantId, periodStart, quota])
        let row = try await tx.single(
            "SELECT used, reserved FROM billing.usage WHERE tenant_id = $1 AND period_start = $2 AND quota = $3 FOR UPDATE",
            [tenantId, periodStart, quota])
        return (try row.int("used"), try row.int("reserved"))
    }

    /// The reservation already made for this reference, if any (a retried request reserves once).
    func reservationId(_ tx: Transaction, tenantId: String, quota: String, ref: String) async throws -> String? {
        try await tx.one("SELECT id FROM billing.reservations WHERE tenant_id = $1 AND quota = $2 AND ref = $3", [tenantId, quota, ref])?
            .string("id")
    }

    func reserve(
        _ tx: Transaction, id: String, tenantId: String, quota: String, ref: String, amount: Int, periodStart: Date
    ) async throws {
        _ = try await tx.execute(
            """
            INSERT INTO billing.reservations (id, tenant_id, quota, ref, amount, period_start, status)
            VALUES ($1, $2, $3, $4, $5, $6, 'reserved')
            """, [id, tenantId, quota, ref, amount, periodStart])
        _ = try await tx.execute(
            "UPDATE billing.usage SET reserved = reserved + $4 WHERE tenant_id = $1 AND period_start = $2 AND quota = $3",
            [tenantId, periodStart, quota, amount])
    }

    struct Reservation {
        var id: String
        var status: String
        var amount: Int
        /// As PostgreSQL wrote it, to find the same usage row exactly.
        var periodStartText: String
    }

    func lockReservation(_ tx: Transaction, tenantId: String, quota: String, ref: String) async throws -> Reservation? {
        try await tx.one(
            "SELECT * FROM billing.reservations WHERE tenant_id = $1 AND quota = $2 AND ref = $3 FOR UPDATE", [tenantId, quota, ref]
        ).map { r in
            Reservation(
                id: try r.string("id"), status: try r.string("status"), amount: try r.int("amount"), periodStartText: try r.string("period_start"))
        }
    }

    /// Commits (the units count as used) or releases (they are given back) a reservation.
    func settle(_ tx: Transaction, tenantId: String, quota: String, _ r: Reservation, to status: String) async throws {
        _ = try await tx.execute("UPDATE billing.reservations SET status = $2, settled_at = now() WHERE id = $1", [r.id, status])
        _ = try await tx.execute(
            """
            UPDATE billing.usage SET reserved = greatest(0, reserved - $4), used = used + CASE WHEN $5 = 'committed' THEN $4 ELSE 0 END
            WHERE tenant_id = $1 AND period_start = $2::timestamptz AND quota = $3
            """, [tenantId, r.periodStartText, quota, r.amount, status])
    }

    func setGauge(_ tx: Transaction, tenantId: String, quota: String, inUse: Int) async throws {
        _ = try await tx.execute(
            """
            INSERT INTO billing.gauges (tenant_id, quota, in_use) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id, quota) DO UPDATE SET in_use = $3, reported_at = now()
            """, [tenantId, quota, inUse])
    }
}

/// Every statement on `billing.processed_events`: each Stripe or bus event is applied once.
struct ProcessedEventStore: Sendable {
    let db: Store

    /// Claims an event id; false when it was already processed.
    func claim(id: String, tenantId: String?, source: String, type: String) async throws -> Bool {
        try await db.query(
            .crossTenant,
            "INSERT INTO billing.processed_events (id, tenant_id, source, type) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
            [id, tenantId, source, type]
        ).first != nil
    }

    func claim(_ tx: Transaction, id: String, tenantId: String, source: String, type: String) async throws -> Bool {
        try await tx.one(
            "INSERT INTO billing.processed_events (id, tenant_id, source, type) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
            [id, tenantId, source, type]) != nil
    }

    /// Forgets a claim whose processing failed, so the redelivered event is applied.
    func forget(id: String) async throws {
        try await db.query(.crossTenant, "DELETE FROM billing.processed_events WHERE id = $1", [id])
    }
}
