import Foundation
import Logging
import VigilCore

/// How a transaction sees tenant-scoped rows (PostgreSQL row-level security is the safety net).
public enum TenantScope: Sendable {
    /// Only rows of this tenant are visible or writable.
    case tenant(String)
    /// Rows of every tenant: for the few lookups that must cross tenants (login, key resolution).
    case crossTenant
    /// No tenant: tenant-scoped tables look empty.
    case none
}

/// A PostgreSQL connection pool with transactions, migrations and the outbox.
public final class Store: Sendable {
    private let pool: ConnectionPool
    public let schema: String
    let logger: Logger
    /// Poked after a commit that wrote outbox rows, so the relay publishes without waiting.
    let outboxSignal: OutboxSignal

    public init(url: String, schema: String, poolSize: Int = 8, logger: Logger) {
        self.pool = ConnectionPool(url: url, size: poolSize)
        self.schema = schema
        self.logger = logger
        self.outboxSignal = OutboxSignal()
    }

    /// Runs `body` in one transaction with the given tenant scope; commits on success, rolls back on error.
    public func transaction<T: Sendable>(_ scope: TenantScope,
                                         _ body: (Transaction) async throws -> T) async throws -> T {
        let conn = try await pool.acquire()
        do {
            _ = try await conn.execute("BEGIN", [])
            switch scope {
            case .tenant(let t):
                _ = try await conn.execute("SELECT set_config('vigil.tenant_id', $1, true)", [t])
            case .crossTenant:
                _ = try await conn.execute("SELECT set_config('vigil.cross_tenant', 'on', true)", [])
            case .none: break
            }
            let tx = Transaction(conn: conn, schema: schema)
            let result = try await body(tx)
            _ = try await conn.execute("COMMIT", [])
            await pool.release(conn)
            if tx.wroteOutbox { outboxSignal.poke() }
            return result
        } catch {
            await conn.resetAfterError()
            await pool.release(conn)
            throw error
        }
    }

    /// One statement in its own transaction.
    @discardableResult
    public func query(_ scope: TenantScope, _ sql: String, _ params: [any SQLParameter] = []) async throws -> [Row] {
        try await transaction(scope) { try await $0.query(sql, params) }
    }

    /// Verifies that the database answers.
    public func ping() async throws {
        _ = try await query(.none, "SELECT 1")
    }

    /// Applies this service's migrations (see `Migrator`).
    public func migrate(_ migrations: [Migration]) async throws {
        let conn = try await pool.acquire()
        do {
            try await Migrator(schema: schema, logger: logger).apply(migrations, on: conn)
            await pool.release(conn)
        } catch {
            await conn.resetAfterError()
            await pool.release(conn)
            throw error
        }
    }
}

/// A transaction handle; valid only inside `Store.transaction`.
public final class Transaction: @unchecked Sendable {
    let conn: PGConnection
    let schema: String
    var wroteOutbox = false

    init(conn: PGConnection, schema: String) {
        self.conn = conn
        self.schema = schema
    }

    /// Runs a parameterized statement and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ params: [any SQLParameter] = []) async throws -> [Row] {
        try await conn.execute(sql, params.map(\.sqlText)).rows
    }

    /// Runs a parameterized statement and returns the number of affected rows.
    @discardableResult
    public func execute(_ sql: String, _ params: [any SQLParameter] = []) async throws -> Int {
        try await conn.execute(sql, params.map(\.sqlText)).affected
    }

    /// First row or nil.
    public func one(_ sql: String, _ params: [any SQLParameter] = []) async throws -> Row? {
        try await query(sql, params).first
    }

    /// Writes an event to this service's outbox in the current transaction; the relay publishes it
    /// to JetStream after commit with `Nats-Msg-Id` = the event id.
    public func emit<T: Encodable & Sendable>(_ subject: String, type: String, tenantId: String?, data: T,
                                              headers: [String: String] = [:]) async throws {
        let event = EventEnvelope(id: ID.make(), type: type, occurredAt: Date(), tenantId: tenantId, data: data)
        try await execute(
            "INSERT INTO \(schema).outbox (id, subject, payload, headers) VALUES ($1, $2, $3, $4)",
            [event.id, subject, String(decoding: try JSON.encode(event), as: UTF8.self), try JSONParameter(headers)])
        wroteOutbox = true
    }
}

/// The JSON shape of every event on `vigil.events.>` and of outbox work items.
public struct EventEnvelope<T: Encodable & Sendable>: Encodable, Sendable {
    public let id: String
    public let type: String
    public let occurredAt: Date
    public let tenantId: String?
    public let data: T
}

/// A fixed-size pool; waiters queue in FIFO order.
actor ConnectionPool {
    private var idle: [PGConnection]
    private var waiters: [CheckedContinuation<PGConnection, Never>] = []

    init(url: String, size: Int) {
        idle = (0..<max(1, size)).map { PGConnection(url: url, label: "\($0)") }
    }

    func acquire() async throws -> PGConnection {
        if let c = idle.popLast() { return c }
        return await withCheckedContinuation { waiters.append($0) }
    }

    func release(_ c: PGConnection) {
        if !waiters.isEmpty { waiters.removeFirst().resume(returning: c) } else { idle.append(c) }
    }
}
