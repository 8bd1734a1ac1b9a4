import Bus
import CLibPQ
import Foundation
import VigilCore

/// One libpq connection, driven from its own serial Dispatch queue so blocking calls never run on
/// Swift's cooperative pool.
///
/// `@unchecked Sendable` is safe because the mutable state (the libpq handle, the prepared statement
/// names, the session's scope) is touched only on `queue`, which serializes every call, and the pool
/// hands the connection to one holder at a time.
final class PGConnection: @unchecked Sendable {
    private var conn: OpaquePointer?
    /// Names of statements prepared on this connection (parse and plan once, run many times).
    private var prepared: Set<String> = []
    /// The row-level-security scope last set on this session (nil = unknown). Only the pool's
    /// current holder touches it.
    var scopeKey: String?
    /// Between a BEGIN and its COMMIT or ROLLBACK (only touched on `queue`).
    private var inTransaction = false
    let url: String
    let queue: DispatchQueue

    /// Transaction pooling in front (PgBouncer `pool_mode = transaction`): nothing may outlive a transaction,
    /// so no named prepared statements and no session-level scope; each use sets its scope inside its own
    /// transaction (`set_config(…, true)`).
    let sessionless: Bool

    init(url: String, label: String, sessionless: Bool = false) {
        self.url = url
        self.sessionless = sessionless
        self.queue = DispatchQueue(label: "vigil.pg.\(label)")
    }

    deinit { if let conn { PQfinish(conn) } }

    /// Opens (or re-opens) the connection if needed. Runs on `queue`. An idle connection is checked first
    /// without a round trip: reading what the socket holds finds a server that closed it (a restart, an
    /// idle timeout, a pooler), and a fresh connection replaces it before the statement is sent.
    private func ensureOpen() throws -> OpaquePointer {
        if let conn, PQstatus(conn) == CONNECTION_OK, PQconsumeInput(conn) == 1, PQstatus(conn) == CONNECTION_OK { return conn }
        if inTransaction {
            // The session (its transaction and row-level-security scope) is gone: a fresh one must not take its
            // place silently in the middle of a transaction. The caller rolls back; the next use reconnects.
            inTransaction = false
            throw StoreError("the database connection was lost during a transaction", connectionLost: true)
        }
        if let conn {
            PQfinish(conn)
            self.conn = nil
        }
        prepared.removeAll()
        scopeKey = nil
        guard let c = PQconnectdb(url) else { throw StoreError("cannot allocate connection") }
        guard PQstatus(c) == CONNECTION_OK else {
            let msg = String(cString: PQerrorMessage(c)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(c)
            throw StoreError("cannot connect to PostgreSQL: \(msg)", connectionLost: true)
        }
        conn = c
        _ = try run(c, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET client_min_messages = 'warning'", [])
        return c
    }

    /// Runs one statement with text parameters; returns rows and the affected-row count.
    func execute(_ sql: String, _ params: [String?]) async throws -> (rows: [Row], affected: Int) {
        try await Blocking.run(on: queue) { [self] in
            let ends = sql == "COMMIT" || sql == "ROLLBACK"
            defer { if ends { inTransaction = false } }
            let c = try ensureOpen()
            return try run(c, sql, params)
        }
    }

    /// Prepares `sql` once per connection when it is a plain DML/query statement; returns its name.
    private func preparedName(_ c: OpaquePointer, _ sql: String, _ nParams: Int) throws -> String? {
        if sessionless { return nil }
        let head = sql.prefix(8).uppercased()
        guard ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(where: { head.hasPrefix($0) }) else { return nil }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in sql.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let name = "v" + String(h, radix: 36)
        if prepared.contains(name) { return name }
        guard let res = PQprepare(c, name, sql, Int32(nParams), nil) else { throw StoreError(String(cString: PQerrorMessage(c))) }
        defer { PQclear(res) }
        _ = try collect(res, c)
        prepared.insert(name)
        return name
    }

    /// Runs several parameterized statements in one network round trip (libpq pipeline mode) and
    /// returns each statement's result. The first failure is thrown; statements after it did not run.
    ///
    /// `scope` (a key and the statement setting it) is prepended unless this session already has it; it is
    /// decided here, after the connection was checked, so a replaced connection never runs without its scope.
    func pipeline(
        _ statements: [(sql: String, params: [String?])], scope: (key: String, statement: (sql: String, params: [String?]))? = nil
    ) async throws -> [(rows: [Row], affected: Int)] {
        try await Blocking.run(on: queue) { [self] in
            let c = try ensureOpen()
            let opensTransaction = statements.last?.sql == "BEGIN"
            let callers = statements.count
            var statements = statements
            // Where the caller's statements are in what is sent (their results are what is returned).
            var first = 0
            if let scope, sessionless {
                if opensTransaction {
                    statements.append(scope.statement)  // local to the transaction the caller opens
                } else {
                    statements = [("BEGIN", []), scope.statement] + statements + [("COMMIT", [])]
                    first = 2
                }
            } else if let scope, scopeKey != scope.key {
                statements.insert(scope.statement, at: 0)
                scopeKey = scope.key
                first = 1
            }
            let names = try statements.map { try preparedName(c, $0.sql, $0.params.count) }
            guard PQenterPipelineMode(c) == 1 else { throw StoreError("cannot enter pipeline mode") }
            defer { PQexitPipelineMode(c) }
            for (st, name) in zip(statements, names) {
                var cParams: [UnsafeMutablePointer<CChar>?] = st.params.map { $0.flatMap { strdup($0) } }
                defer { cParams.forEach { free($0) } }
                let ok = cParams.withUnsafeMutableBufferPointer { buf in
                    buf.withMemoryRebound(to: UnsafePointer<CChar>?.self) { p in
                        if let name { return PQsendQueryPrepared(c, name, Int32(st.params.count), p.baseAddress, nil, nil, 0) }
                        return PQsendQueryParams(c, st.sql, Int32(st.params.count), nil, p.baseAddress, nil, nil, 0)
                    }
                }
                guard ok == 1 else { throw failure(c) }
            }
            guard PQpipelineSync(c) == 1 else { throw failure(c) }
            var results: [(rows: [Row], affected: Int)] = []
            var firstError: (any Error)? = nil
            // Each statement yields one result then NULL; the sync point ends the pipeline.
            var nulls = 0
            while true {
                guard let res = PQgetResult(c) else {
                    // One NULL follows each statement's result; two in a row means the connection broke.
                    nulls += 1
                    if nulls > 1 || PQstatus(c) != CONNECTION_OK {
                        throw StoreError("connection lost during pipeline: \(String(cString: PQerrorMessage(c)))", connectionLost: true)
                    }
                    continue
                }
                nulls = 0
                let status = PQresultStatus(res)
                if status == PGRES_PIPELINE_SYNC {
                    PQclear(res)
                    break
                }
                if firstError == nil {
                    do { results.append(try collect(res, c)) } catch { firstError = error }
                }
                PQclear(res)
            }
            if let firstError { throw firstError }
            if opensTransaction { inTransaction = true }
            return Array(results[first..<min(results.count, first + callers)])
        }
    }

    /// Runs a multi-statement script without parameters (migrations).
    func script(_ sql: String) async throws {
        try await Blocking.run(on: queue) { [self] in
            let c = try ensureOpen()
            guard let res = PQexec(c, sql) else { throw StoreError("out of memory") }
            defer { PQclear(res) }
            try check(res, c)
        }
    }

    private func run(_ c: OpaquePointer, _ sql: String, _ params: [String?]) throws -> (rows: [Row], affected: Int) {
        let res: OpaquePointer?
        if params.isEmpty && !sql.contains("$1") {
            res = PQexec(c, sql)
        } else {
            var cParams: [UnsafeMutablePointer<CChar>?] = params.map { $0.flatMap { strdup($0) } }
            defer { cParams.forEach { free($0) } }
            let name = try preparedName(c, sql, params.count)
            res = cParams.withUnsafeMutableBufferPointer { buf in
                buf.withMemoryRebound(to: UnsafePointer<CChar>?.self) { p in
                    if let name { return PQexecPrepared(c, name, Int32(params.count), p.baseAddress, nil, nil, 0) }
                    return PQexecParams(c, sql, Int32(params.count), nil, p.baseAddress, nil, nil, 0)
                }
            }
        }
        guard let res else { throw failure(c) }
        defer { PQclear(res) }
        return try collect(res, c)
    }

    /// Turns a result into rows (or throws its error).
    private func collect(_ res: OpaquePointer, _ c: OpaquePointer) throws -> (rows: [Row], affected: Int) {
        try check(res, c)
        let nRows = Int(PQntuples(res))
        let nCols = Int(PQnfields(res))
        var columns: [String: Int] = [:]
        for j in 0..<nCols { columns[String(cString: PQfname(res, Int32(j)))] = j }
        var rows: [Row] = []
        rows.reserveCapacity(nRows)
        for i in 0..<nRows {
            var values: [String?] = []
            values.reserveCapacity(nCols)
            for j in 0..<nCols {
                if PQgetisnull(res, Int32(i), Int32(j)) == 1 {
                    values.append(nil)
                } else {
                    // Text values come with their length: no strlen, one validating copy.
                    let bytes = UnsafeRawBufferPointer(start: PQgetvalue(res, Int32(i), Int32(j)), count: Int(PQgetlength(res, Int32(i), Int32(j))))
                    values.append(String(decoding: bytes, as: UTF8.self))
                }
            }
            rows.append(Row(columns: columns, values: values))
        }
        let affected = Int(String(cString: PQcmdTuples(res))) ?? 0
        return (rows, affected)
    }

    private func check(_ res: OpaquePointer, _ c: OpaquePointer) throws {
        let status = PQresultStatus(res)
        if status == PGRES_PIPELINE_ABORTED { throw StoreError("statement skipped after an earlier error in the pipeline") }
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            let state = PQresultErrorField(res, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let msg = String(cString: PQresultErrorMessage(res)).trimmingCharacters(in: .whitespacesAndNewlines)
            throw StoreError(msg, sqlState: state, connectionLost: PQstatus(c) != CONNECTION_OK)
        }
    }

    /// The connection's last error; lost when libpq says the connection is no longer OK.
    private func failure(_ c: OpaquePointer) -> StoreError {
        StoreError(
            String(cString: PQerrorMessage(c)).trimmingCharacters(in: .whitespacesAndNewlines), connectionLost: PQstatus(c) != CONNECTION_OK)
    }

    /// Rolls back whatever transaction is open (used after an error inside a transaction).
    func resetAfterError() async {
        scopeKey = nil
        _ = try? await execute("ROLLBACK", [])
    }
}
