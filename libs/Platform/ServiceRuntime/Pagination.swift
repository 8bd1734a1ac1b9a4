import Bus
import Contracts
import Foundation
import Store
import Synchronization
import VigilCore

/// Keyset pagination over `(created_at, id)`, newest first, with `offset` for compatibility.
package struct Pagination: Sendable {
    package let limit: Int
    package let offset: Int?
    let after: (createdAt: String, id: String)?

    package static let defaultLimit = 50
    package static let maxLimit = 200

    /// `limit` (1…200, default 50) and `skip` (0 or more) of the offset-paged APIs (the code-security routes).
    package static func limitSkip(_ limit: Int?, _ skip: Int?) throws -> (limit: Int, skip: Int) {
        let l = limit ?? defaultLimit
        guard (1...maxLimit).contains(l) else { throw ServiceError.validation("query.limit", "must be between 1 and \(maxLimit)") }
        let s = skip ?? 0
        guard s >= 0 else { throw ServiceError.validation("query.skip", "must be 0 or more") }
        return (l, s)
    }

    package init(_ req: PageRequest) throws {
        let limit = req.limit ?? Self.defaultLimit
        guard (1...Self.maxLimit).contains(limit) else {
            throw ServiceError.validation("query.limit", "must be between 1 and \(Self.maxLimit)")
        }
        self.limit = limit
        if let o = req.offset, o < 0 { throw ServiceError.validation("query.offset", "must be 0 or more") }
        offset = req.offset
        if let c = req.cursor {
            guard let raw = Data(base64Encoded: c), let s = String(data: raw, encoding: .utf8),
                let bar = s.lastIndex(of: "|"), ID.isValid(String(s[s.index(after: bar)...]))
            else {
                throw ServiceError.validation("query.cursor", "is not a cursor returned by this API")
            }
            after = (String(s[..<bar]), String(s[s.index(after: bar)...]))
        } else {
            after = nil
        }
    }

    /// SQL to append after a WHERE clause whose parameters end at `$n`: keyset condition, order, limit.
    /// `alias` qualifies the columns (e.g. `m.`).
    package func clause(nextParam n: Int, alias: String = "") -> (sql: String, params: [any SQLParameter]) {
        var sql = ""
        var params: [any SQLParameter] = []
        if let after {
            sql += " AND (\(alias)created_at, \(alias)id) < ($\(n)::timestamptz, $\(n + 1)::uuid)"
            params = [after.createdAt, after.id]
        }
        sql += " ORDER BY \(alias)created_at DESC, \(alias)id DESC LIMIT \(limit + 1)"
        if after == nil, let offset { sql += " OFFSET \(offset)" }
        return (sql, params)
    }

    /// Runs a keyset-paginated list and its count in one transaction: `SELECT <columns> FROM <from>
    /// WHERE <filter>` with the filter's values as `$1…`; `alias` qualifies created_at/id for joins.
    package func list<T>(
        _ tx: Transaction, columns: String = "*", from: String, filter: String,
        _ values: [any SQLParameter], alias: String = "",
        map: (Row) throws -> T
    ) async throws -> Page<T> {
        let (clause, extra) = self.clause(nextParam: values.count + 1, alias: alias)
        let rows = try await tx.query("SELECT \(columns) FROM \(from) WHERE \(filter)\(clause)", values + extra)
        let total = try await tx.one("SELECT count(*) AS n FROM \(from) WHERE \(filter)", values)?.int("n")
        return try page(rows, total: total, map: map)
    }

    /// Trims the extra row and builds `next_cursor` from the last row's raw `created_at` and `id`.
    package func page<T>(_ rows: [Row], total: Int?, map: (Row) throws -> T) throws -> Page<T> {
        let visible = Array(rows.prefix(limit))
        var next: String? = nil
        if rows.count > limit, let last = visible.last {
            next = Data("\(try last.string("created_at"))|\(try last.string("id"))".utf8).base64EncodedString()
        }
        return Page(items: try visible.map(map), nextCursor: next, total: total)
    }
}
