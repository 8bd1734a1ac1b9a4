import Bus
import Contracts
import Foundation
import Store
import Synchronization
import VigilCore

/// Decoded `Vigil-Principal` headers, memoized: the gateway sends the same header text for every
/// request of a credential, and JSON decoding is the costliest step of a cheap handler.
enum PrincipalHeaders {
    private static let memo = Mutex<[String: Principal]>([:])

    static func decode(_ header: String) -> Principal? {
        if let p = memo.withLock({ $0[header] }) { return p }
        guard let p = try? JSON.decode(Principal.self, from: Data(header.utf8)) else { return nil }
        memo.withLock { m in
            if m.count >= 10_000 { m.removeAll() }
            m[header] = p
        }
        return p
    }
}

extension CallContext {
    /// The authenticated caller; 401 when the gateway attached none.
    package func requirePrincipal() throws -> Principal {
        guard let p = principal, let principal = PrincipalHeaders.decode(p) else {
            throw ServiceError.unauthorized()
        }
        return principal
    }

    /// The caller when present (public routes that behave differently for signed-in users).
    package var optionalPrincipal: Principal? { try? requirePrincipal() }
}

extension Principal {
    /// Throws 403 unless the caller's role is at least `role` (owner > admin > analyst > viewer).
    package func require(atLeast role: Role) throws {
        guard self.role.rank >= role.rank, self.role != .billing || role == .billing else {
            throw ServiceError.forbidden("requires the \(role.rawValue) role or higher")
        }
    }

    /// The store scope for this caller's workspace.
    package var scope: TenantScope { .tenant(tenantId) }
}

/// Keyset pagination over `(created_at, id)`, newest first, with `offset` for compatibility.
package struct Pagination: Sendable {
    package let limit: Int
    package let offset: Int?
    let after: (createdAt: String, id: String)?

    package static let defaultLimit = 50
    package static let maxLimit = 200

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

/// Small validators that produce 422 issues with paths.
package enum Validate {
    package static func email(_ s: String, path: String = "body.email") throws -> String {
        let e = s.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = e.split(separator: "@", omittingEmptySubsequences: false)
        guard e.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !parts[1].hasPrefix("."), !parts[1].hasSuffix("."), !e.contains(" ")
        else {
            throw ServiceError.validation(path, "must be a valid email address")
        }
        return e
    }

    package static func text(_ s: String, path: String, min: Int = 1, max: Int = 200) throws -> String {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard t.count >= min else { throw ServiceError.validation(path, min == 1 ? "must not be empty" : "must be at least \(min) characters") }
        guard t.count <= max else { throw ServiceError.validation(path, "must be at most \(max) characters") }
        return t
    }

    package static func password(_ s: String, path: String = "body.password") throws -> String {
        guard s.count >= 10 else { throw ServiceError.validation(path, "must be at least 10 characters") }
        guard s.utf8.count <= 256 else { throw ServiceError.validation(path, "must be at most 256 bytes") }
        return s
    }

    /// A comma-separated query value (`severity=high,critical`): trimmed, empty items dropped, at most
    /// 50, each one of `allowed` when given; nil when absent.
    package static func list(_ s: String?, path: String, allowed: [String]? = nil, lower: Bool = true) throws -> [String]? {
        guard let s else { return nil }
        let items = s.split(separator: ",").map {
            let t = $0.trimmingCharacters(in: .whitespaces)
            return lower ? t.lowercased() : t
        }.filter { !$0.isEmpty }
        guard !items.isEmpty, items.count <= 50 else { throw ServiceError.validation(path, "must be a comma-separated list") }
        if let allowed, let bad = items.first(where: { !allowed.contains($0) }) {
            throw ServiceError.validation(path, "\(bad) is not one of \(allowed.joined(separator: ", "))")
        }
        return items
    }

    /// A path id must be a UUID, else the resource cannot exist (404, not a database error).
    package static func id(_ s: String, _ what: String) throws -> String {
        guard ID.isValid(s) else { throw ServiceError.notFound(what) }
        return s.lowercased()
    }
}
