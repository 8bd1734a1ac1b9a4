import Foundation
import VigilCore

/// A value bound to a query parameter, sent in PostgreSQL's text format.
public protocol SQLParameter: Sendable {
    var sqlText: String? { get }
}
extension String: SQLParameter { public var sqlText: String? { self } }
extension Int: SQLParameter { public var sqlText: String? { String(self) } }
extension Int64: SQLParameter { public var sqlText: String? { String(self) } }
extension Double: SQLParameter { public var sqlText: String? { String(self) } }
extension Bool: SQLParameter { public var sqlText: String? { self ? "t" : "f" } }
extension Date: SQLParameter { public var sqlText: String? { Timestamp.format(self) } }
extension Data: SQLParameter {
    /// bytea in hex format.
    public var sqlText: String? {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [92, 120]  // \x
        out.reserveCapacity(2 + count * 2)
        for v in self {
            out.append(digits[Int(v >> 4)])
            out.append(digits[Int(v & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
extension Optional: SQLParameter where Wrapped: SQLParameter {
    public var sqlText: String? { self?.sqlText }
}
extension Array: SQLParameter where Element == String {
    /// A text[] literal.
    public var sqlText: String? {
        ArrayParameter(map { Optional($0) }).sqlText
    }
}

/// An array parameter whose elements may be NULL (`{"a",NULL}`); cast it in SQL (`$1::int[]`).
public struct ArrayParameter: SQLParameter {
    public let sqlText: String?
    public init(_ values: [String?]) {
        var out: [UInt8] = [0x7B]
        out.reserveCapacity(values.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (i, v) in values.enumerated() {
            if i > 0 { out.append(0x2C) }
            guard let v else {
                out.append(contentsOf: "NULL".utf8)
                continue
            }
            // Inside double quotes only `"` and `\` need a backslash.
            out.append(0x22)
            for b in v.utf8 {
                if b == 0x22 || b == 0x5C { out.append(0x5C) }
                out.append(b)
            }
            out.append(0x22)
        }
        out.append(0x7D)
        sqlText = String(decoding: out, as: UTF8.self)
    }
}

/// A JSON value bound as text, for jsonb columns.
public struct JSONParameter: SQLParameter {
    public let sqlText: String?
    public init<T: Encodable>(_ value: T) throws { sqlText = String(decoding: try JSON.encode(value), as: UTF8.self) }
    public init(raw: Data) { sqlText = String(decoding: raw, as: UTF8.self) }
}

/// Errors from the store. `sqlState` carries PostgreSQL's code (e.g. 23505 unique violation).
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let sqlState: String?
    public let message: String
    public var description: String { "store error \(sqlState ?? "-"): \(message)" }
    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    /// The input itself was wrong (data exception, not-null or check violation): repeating fails again.
    public var isDataError: Bool { sqlState.map { $0.hasPrefix("22") || $0 == "23502" || $0 == "23514" } ?? false }
    /// The connection to PostgreSQL broke or could not be made (server down or restarted): nothing a retry on
    /// this connection fixes; a fresh one may.
    public var connectionLost = false
    init(_ message: String, sqlState: String? = nil, connectionLost: Bool = false) {
        self.connectionLost =
            connectionLost || (sqlState.map { $0.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains($0) } ?? false)
        self.message = message
        self.sqlState = sqlState
    }
}

extension StoreError: ClientMeaningfulError {
    /// A lost connection is 503; a value PostgreSQL cannot store (SQLSTATE class 22: a NUL character in text, a
    /// number out of range, malformed JSON) came from the request: 422.
    public var serviceError: ServiceError? {
        if connectionLost { return .unavailable("the database is unavailable; retry shortly") }
        if let s = sqlState, s.hasPrefix("22") {
            return ServiceError(status: 422, error: "validation_error", message: "a value in the request cannot be stored: \(message.prefix(200))")
        }
        return nil
    }
}

/// One result row, decoded by column name. Missing or mistyped columns throw (they are bugs).
public struct Row: Sendable {
    let columns: [String: Int]
    let values: [String?]

    public func isNull(_ c: String) -> Bool { raw(c) == nil }

    public func raw(_ c: String) -> String? {
        guard let i = columns[c] else { return nil }
        return values[i]
    }

    public func string(_ c: String) throws -> String {
        guard let v = raw(c) else { throw StoreError("column \(c) is null or missing") }
        return v
    }
    public func optionalString(_ c: String) -> String? { raw(c) }

    /// A text column holding one of an enum's raw values (statuses): anything else is a store error.
    public func value<T: RawRepresentable>(_ c: String, as type: T.Type = T.self) throws -> T where T.RawValue == String {
        let text = try string(c)
        guard let v = T(rawValue: text) else { throw StoreError("column \(c) holds \(text), not a \(T.self)") }
        return v
    }

    public func int(_ c: String) throws -> Int {
        guard let v = raw(c), let i = Int(v) else { throw StoreError("column \(c) is not an integer") }
        return i
    }
    public func optionalInt(_ c: String) -> Int? { raw(c).flatMap { Int($0) } }

    public func bool(_ c: String) throws -> Bool {
        guard let v = raw(c) else { throw StoreError("column \(c) is null") }
        return v == "t" || v == "true"
    }

    public func date(_ c: String) throws -> Date {
        guard let v = raw(c), let d = Row.parseTimestamp(v) else { throw StoreError("column \(c) is not a timestamp") }
        return d
    }
    public func optionalDate(_ c: String) -> Date? { raw(c).flatMap(Row.parseTimestamp) }

    public func bytes(_ c: String) throws -> Data {
        guard let v = raw(c) else { throw StoreError("column \(c) is null") }
        return Row.parseBytea(v)
    }

    /// Decodes a json/jsonb column into `T`.
    public func json<T: Decodable>(_ c: String, as: T.Type = T.self) throws -> T {
        guard let v = raw(c) else { throw StoreError("column \(c) is null") }
        // Most tags and many evidence maps are empty: skip the decoder for them.
        if v == "{}", let empty = [String: JSONValue]() as? T { return empty }
        return try JSON.decode(T.self, from: Data(v.utf8))
    }

    /// text[] column.
    public func stringArray(_ c: String) throws -> [String] {
        guard let v = raw(c) else { return [] }
        return Row.parseTextArray(v)
    }

    /// Parses PostgreSQL's `2026-11-22 09:19:57.123456+00` (DateStyle ISO, TimeZone UTC).
    static func parseTimestamp(_ s: String) -> Date? { Timestamp.parse(s) }

    static func parseBytea(_ s: String) -> Data {
        guard s.hasPrefix("\\x") else { return Data(s.utf8) }
        var out = Data()
        out.reserveCapacity((s.count - 2) / 2)
        var it = s.utf8.dropFirst(2).makeIterator()
        func nib(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : (c >= 65 ? c - 55 : c - 48) }
        while let a = it.next(), let b = it.next() { out.append(nib(a) << 4 | nib(b)) }
        return out
    }

    static func parseTextArray(_ s: String) -> [String] {
        guard s.count >= 2 else { return [] }
        let inner = s.dropFirst().dropLast()
        if inner.isEmpty { return [] }
        var out: [String] = []
        var cur = ""
        var quoted = false
        var escape = false
        for ch in inner {
            if escape {
                cur.append(ch)
                escape = false
                continue
            }
            switch ch {
            case "\\": escape = true
            case "\"": quoted.toggle()
            case "," where !quoted:
                out.append(cur)
                cur = ""
            default: cur.append(ch)
            }
        }
        out.append(cur)
        return out
    }
}
