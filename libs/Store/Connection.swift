import Bus
import CLibPQ
import Foundation

/// One libpq connection, driven from its own serial Dispatch queue so blocking calls never run on
/// Swift's cooperative pool.
final class PGConnection: @unchecked Sendable {
    private var conn: OpaquePointer?
    let url: String
    let queue: DispatchQueue

    init(url: String, label: String) {
        self.url = url
        self.queue = DispatchQueue(label: "vigil.pg.\(label)")
    }

    deinit { if let conn { PQfinish(conn) } }

    /// Opens (or re-opens) the connection if needed. Runs on `queue`.
    private func ensureOpen() throws -> OpaquePointer {
        if let conn, PQstatus(conn) == CONNECTION_OK { return conn }
        if let conn { PQfinish(conn); self.conn = nil }
        guard let c = PQconnectdb(url) else { throw StoreError("cannot allocate connection") }
        guard PQstatus(c) == CONNECTION_OK else {
            let msg = String(cString: PQerrorMessage(c)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(c)
            throw StoreError("cannot connect to PostgreSQL: \(msg)")
        }
        conn = c
        _ = try run(c, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET client_min_messages = 'warning'", [])
        return c
    }

    /// Runs one statement with text parameters; returns rows and the affected-row count.
    func execute(_ sql: String, _ params: [String?]) async throws -> (rows: [Row], affected: Int) {
        try await Blocking.run(on: queue) { [self] in
            let c = try ensureOpen()
            return try run(c, sql, params)
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
            res = cParams.withUnsafeMutableBufferPointer { buf in
                buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { p in
                    PQexecParams(c, sql, Int32(params.count), nil, p, nil, nil, 0)
                }
            }
        }
        guard let res else { throw StoreError(String(cString: PQerrorMessage(c))) }
        defer { PQclear(res) }
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
                    values.append(String(cString: PQgetvalue(res, Int32(i), Int32(j))))
                }
            }
            rows.append(Row(columns: columns, values: values))
        }
        let affected = Int(String(cString: PQcmdTuples(res))) ?? 0
        return (rows, affected)
    }

    private func check(_ res: OpaquePointer, _ c: OpaquePointer) throws {
        let status = PQresultStatus(res)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            let state = PQresultErrorField(res, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let msg = String(cString: PQresultErrorMessage(res)).trimmingCharacters(in: .whitespacesAndNewlines)
            throw StoreError(msg, sqlState: state)
        }
    }

    /// Rolls back whatever transaction is open (used after an error inside a transaction).
    func resetAfterError() async {
        _ = try? await execute("ROLLBACK", [])
    }
}
