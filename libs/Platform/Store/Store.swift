import Foundation
import Logging
import Synchronization
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
    /// Autocommit reads (`query` of a SELECT) go here when a read replica is configured.
    private let readPool: ConnectionPool?
    public let schema: String
    let logger: Logger
    /// Poked after a commit that wrote outbox rows, so the relay publishes without waiting.
    let outboxSignal: WakeSignal
    let sessionless: Bool
    let migrationURL: String?

    /// `readURL`: a read replica for autocommit reads (transactions and writes always use `url`). `sessionless`:
    /// a transaction-pooling PgBouncer is in front (see `PGConnection.sessionless`). `migrationURL`: a direct
    /// connection for migrations (their advisory lock is held across transactions), when `url` is a pooler.
    public init(
        url: String, schema: String, poolSize: Int = 8, readURL: String? = nil, sessionless: Bool = false, migrationURL: String? = nil,
        logger: Logger
    ) {
        self.pool = ConnectionPool(url: url, size: poolSize, sessionless: sessionless)
        self.readPool = readURL.map { ConnectionPool(url: $0, size: poolSize, sessionless: sessionless) }
        self.schema = schema
        self.logger = logger
        self.outboxSignal = WakeSignal()
        self.sessionless = sessionless
        self.migrationURL = migrationURL
    }

    /// Runs `body` in one transaction with the given tenant scope; commits on success, rolls back on error.
    /// `eventHeaders` ride on every event the transaction emits (correlation id, client address…).
    public func transaction<T: Sendable>(
        _ scope: TenantScope, eventHeaders: [String: String] = [:],
        _ body: (Transaction) async throws -> T
    ) async throws -> T {
        var conn = try await pool.acquire()
        do {
            do {
                _ = try await conn.pipeline([("BEGIN", [])], scope: scoping(scope))
            } catch let e as StoreError where e.connectionLost {
                // Nothing ran yet: once more on a fresh connection (the server may have just restarted).
                await conn.resetAfterError()
                pool.release(conn)
                conn = try await pool.acquire()
                _ = try await conn.pipeline([("BEGIN", [])], scope: scoping(scope))
            }
            let tx = Transaction(conn: conn, schema: schema, eventHeaders: eventHeaders)
            let result = try await body(tx)
            _ = try await conn.execute("COMMIT", [])
            pool.release(conn)
            if tx.wroteOutbox { outboxSignal.poke() }
            return result
        } catch {
            await conn.resetAfterError()
            pool.release(conn)
            throw error
        }
    }

    /// Sets both row-level-security settings for this use of the connection. Every use of a pooled
    /// connection sets them afresh, so a previous user's scope can never leak into the next.
    static func scope(_ scope: TenantScope, local: Bool = false) -> (sql: String, params: [String?]) {
        let (tenant, cross): (String, String) =
            switch scope {
            // A scope that is not a tenant id sees nothing, whichever TenantPredicate the schema uses.
            case .tenant(let t): (ID.isValid(t) ? t : "", "off")
            case .crossTenant: ("", "on")
            case .none: ("", "off")
            }
        return ("SELECT set_config('vigil.tenant_id', $1, \(local)), set_config('vigil.cross_tenant', $2, \(local))", [tenant, cross])
    }

    /// The scope statement and its key (the connection skips it when its session already has that scope;
    /// behind a transaction pooler it is local to each transaction and always sent).
    func scoping(_ scope: TenantScope) -> (key: String, statement: (sql: String, params: [String?])) {
        let st = Self.scope(scope, local: sessionless)
        return (st.params.map { $0 ?? "" }.joined(separator: "|"), st)
    }

    /// A statement that only reads: safe to send again after the connection broke.
    static func isRead(_ sql: String) -> Bool {
        let head = sql.drop(while: { $0.isWhitespace }).prefix(6).uppercased()
        guard head == "SELECT" || head.hasPrefix("WITH") else { return false }
        let upper = sql.uppercased()
        return !upper.contains("INSERT ") && !upper.contains("UPDATE ") && !upper.contains("DELETE ") && !upper.contains("SET_CONFIG")
    }

    /// One statement (autocommit), sent with the scope settings in a single round trip.
    /// Use it for reads and single writes that emit no events.
    @discardableResult
    public func query(_ scope: TenantScope, _ sql: String, _ params: [any SQLParameter] = []) async throws -> [Row] {
        let texts = params.map(\.sqlText)
        let pool = readPool.flatMap { Self.isRead(sql) ? $0 : nil } ?? self.pool
        for attempt in 1...2 {
            let conn = try await pool.acquire()
            do {
                let results = try await conn.pipeline([(sql, texts)], scope: scoping(scope))
                pool.release(conn)
                return results[results.count - 1].rows
            } catch let e as StoreError where e.connectionLost && attempt == 1 && Self.isRead(sql) {
                // A read on a connection that broke: once more on a fresh one.
                await conn.resetAfterError()
                pool.release(conn)
                logger.warning("database connection lost; retrying the read once", metadata: ["error": "\(e.message)"])
            } catch {
                await conn.resetAfterError()
                pool.release(conn)
                throw error
            }
        }
        throw StoreError("unreachable")
    }

    /// The one row a statement must return, in its own round trip (see `Transaction.single`).
    public func single(_ scope: TenantScope, _ sql: String, _ params: [any SQLParameter] = []) async throws -> Row {
        guard let row = try await query(scope, sql, params).first else {
            throw StoreError("the statement returned no row")
        }
        return row
    }

    /// Verifies that the database answers.
    public func ping() async throws {
        _ = try await query(.none, "SELECT 1")
    }

    /// Applies this service's migrations (see `Migrator`).
    public func migrate(_ migrations: [Migration], tenantPredicate: TenantPredicate = .text) async throws {
        let migrator = Migrator(schema: schema, logger: logger, predicate: tenantPredicate)
        if let migrationURL {
            // Its own session on a direct connection: the advisory lock spans the migrations' transactions.
            try await migrator.apply(migrations, on: PGConnection(url: migrationURL, label: "migrate"))
            return
        }
        let conn = try await pool.acquire()
        do {
            try await migrator.apply(migrations, on: conn)
            pool.release(conn)
        } catch {
            await conn.resetAfterError()
            pool.release(conn)
            throw error
        }
    }
}

/// A transaction handle; valid only inside `Store.transaction`.
public final class Transaction: Sendable {
    let conn: PGConnection
    let schema: String
    private let outboxWritten = Atomic<Bool>(false)
    /// Whether this transaction wrote to the outbox (the relay is woken after commit).
    var wroteOutbox: Bool { outboxWritten.load(ordering: .relaxed) }
    let eventHeaders: [String: String]

    init(conn: PGConnection, schema: String, eventHeaders: [String: String] = [:]) {
        self.conn = conn
        self.schema = schema
        self.eventHeaders = eventHeaders
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

    /// The one row a statement must return (an INSERT … RETURNING, an aggregate); its absence is a
    /// store error, not a crash.
    public func single(_ sql: String, _ params: [any SQLParameter] = []) async throws -> Row {
        guard let row = try await query(sql, params).first else { throw StoreError("the statement returned no row") }
        return row
    }

    /// Writes a domain event of `kind` to this service's outbox in the current transaction.
    public func emit<T: Encodable & Sendable>(
        _ kind: EventKind, tenantId: String?, data: T,
        headers: [String: String] = [:]
    ) async throws {
        try await emit(kind.subject, type: kind.type, tenantId: tenantId, data: data, headers: headers)
    }

    /// Writes an event to this service's outbox in the current transaction; the relay publishes it
    /// to JetStream after commit with `Nats-Msg-Id` = the event id.
    public func emit<T: Encodable & Sendable>(
        _ subject: String, type: String, tenantId: String?, data: T,
        headers: [String: String] = [:]
    ) async throws {
        let event = EventEnvelope(id: ID.make(), type: type, occurredAt: Date(), tenantId: tenantId, data: data)
        try await execute(
            "INSERT INTO \(schema).outbox (id, subject, payload, headers) VALUES ($1, $2, $3, $4)",
            [
                event.id, subject, String(decoding: try JSON.encode(event), as: UTF8.self),
                try JSONParameter(eventHeaders.merging(headers) { $1 }),
            ])
        outboxWritten.store(true, ordering: .relaxed)
    }
}

extension Transaction {
    /// SQL that writes the rows of `source` (a CTE or table expression) to the outbox as one batch
    /// row, for events built inside the database; nothing is written when `source` is empty. `line`
    /// is a text expression per row: `subject || ' ' || event id || ' ' || envelope JSON` (see
    /// `OutboxRelay`). Bind `outboxHeaders` at `$<headersParam>` and call `wroteEvents()` after.
    public func outboxBatchInsert(line: String, from source: String, order: String, headersParam: Int) -> String {
        """
        INSERT INTO \(schema).outbox (id, subject, payload, headers, batch)
        SELECT gen_random_uuid(), 'batch', string_agg(\(line), E'\\n' ORDER BY \(order)), $\(headersParam)::jsonb, true
        FROM \(source) HAVING count(*) > 0
        """
    }

    /// The headers every event of this transaction carries, as a parameter for `outboxBatchInsert`.
    public var outboxHeaders: JSONParameter { get throws { try JSONParameter(eventHeaders) } }

    /// Tells the store that SQL of the caller wrote outbox rows (the relay is poked after commit).
    public func wroteEvents() { outboxWritten.store(true, ordering: .relaxed) }
}

/// The JSON shape of every event on `vigil.events.>` and of outbox work items.
public struct EventEnvelope<T: Encodable & Sendable>: Encodable, Sendable {
    public let id: String
    public let type: String
    public let occurredAt: Date
    public let tenantId: String?
    public let data: T
}

/// A fixed-size pool; waiters queue in FIFO order. A lock, not an actor: taking an idle
/// connection costs no executor hop.
final class ConnectionPool: Sendable {
    private struct State {
        var idle: [PGConnection]
        var waiters: [CheckedContinuation<PGConnection, Never>] = []
    }
    private let state: Mutex<State>

    init(url: String, size: Int, sessionless: Bool = false) {
        state = Mutex(State(idle: (0..<max(1, size)).map { PGConnection(url: url, label: "\($0)", sessionless: sessionless) }))
    }

    func acquire() async throws -> PGConnection {
        if let c = state.withLock({ $0.idle.popLast() }) { return c }
        return await withCheckedContinuation { cont in
            let ready = state.withLock { s -> PGConnection? in
                if let c = s.idle.popLast() { return c }
                s.waiters.append(cont)
                return nil
            }
            if let ready { cont.resume(returning: ready) }
        }
    }

    func release(_ c: PGConnection) {
        let waiter = state.withLock { s -> CheckedContinuation<PGConnection, Never>? in
            if !s.waiters.isEmpty { return s.waiters.removeFirst() }
            s.idle.append(c)
            return nil
        }
        waiter?.resume(returning: c)
    }
}
