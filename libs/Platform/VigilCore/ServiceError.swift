import Foundation

/// One validation problem: where (`body.email`, `query.limit`) and what is wrong.
public struct ValidationIssue: Codable, Sendable, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// Which quota refused a request (`quota_exceeded`): its name, limit, what is used and when it resets.
public struct QuotaDetail: Codable, Sendable, Equatable {
    public var name: String
    public var limit: Int
    public var used: Int
    public var resetsAt: String?
    public init(name: String, limit: Int, used: Int, resetsAt: String?) {
        self.name = name
        self.limit = limit
        self.used = used
        self.resetsAt = resetsAt
    }
}

/// An error that reaches the edge: it carries its HTTP status and a stable machine code.
///
/// Services throw it from handlers; the bus carries it as `Nats-Service-Error(-Code)` headers plus the
/// JSON body below, and the gateway turns it into the REST error envelope. Nothing else is exposed.
public struct ServiceError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    /// Stable machine-readable code, e.g. `not_found`, `validation_error`.
    public var error: String
    /// Human-readable explanation; never contains secrets.
    public var message: String
    /// Validation issues (422 only).
    public var issues: [ValidationIssue]?
    /// The quota that refused the request (`quota_exceeded` only).
    public var quota: QuotaDetail?
    /// The HTTP status this maps to. Not part of the JSON body (it travels in a header).
    public var status: Int

    enum CodingKeys: String, CodingKey { case error, message, issues, quota }

    public init(status: Int, error: String, message: String, issues: [ValidationIssue]? = nil) {
        self.status = status
        self.error = error
        self.message = message
        self.issues = issues
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        error = try c.decode(String.self, forKey: .error)
        message = try c.decodeIfPresent(String.self, forKey: .message) ?? ""
        issues = try c.decodeIfPresent([ValidationIssue].self, forKey: .issues)
        quota = try c.decodeIfPresent(QuotaDetail.self, forKey: .quota)
        status = 500
    }

    public var description: String { "\(status) \(error): \(message)" }

    /// The same error with validation paths renamed (a route that spells a field differently from the one it wraps).
    public func renamingPaths(_ names: [String: String]) -> ServiceError {
        var e = self
        e.issues = issues?.map { ValidationIssue(path: names[$0.path] ?? $0.path, message: $0.message) }
        return e
    }

    public static func badRequest(_ m: String, code: String = "bad_request") -> ServiceError { .init(status: 400, error: code, message: m) }
    public static func unauthorized(_ m: String = "authentication required") -> ServiceError { .init(status: 401, error: "unauthorized", message: m) }
    public static func forbidden(_ m: String = "not allowed") -> ServiceError { .init(status: 403, error: "forbidden", message: m) }
    public static func notFound(_ what: String) -> ServiceError { .init(status: 404, error: "not_found", message: "\(what) not found") }
    public static func conflict(_ m: String, code: String = "conflict") -> ServiceError { .init(status: 409, error: code, message: m) }
    public static func gone(_ m: String) -> ServiceError { .init(status: 410, error: "gone", message: m) }
    public static func validation(_ issues: [ValidationIssue]) -> ServiceError {
        .init(status: 422, error: "validation_error", message: "request validation failed", issues: issues)
    }
    public static func validation(_ path: String, _ message: String) -> ServiceError { validation([.init(path: path, message: message)]) }
    public static func quotaExceeded(_ q: QuotaDetail, status: Int = 403, message: String? = nil) -> ServiceError {
        var e = ServiceError(
            status: status, error: "quota_exceeded",
            message: message ?? "the plan's \(q.name) quota is used up (\(q.used) of \(q.limit))" + (q.resetsAt.map { "; it resets at \($0)" } ?? ""))
        e.quota = q
        return e
    }
    public static func tooManyRequests(_ m: String) -> ServiceError { .init(status: 429, error: "rate_limited", message: m) }
    public static func `internal`(_ m: String = "internal error") -> ServiceError { .init(status: 500, error: "internal_error", message: m) }
    public static func unavailable(_ m: String) -> ServiceError { .init(status: 503, error: "unavailable", message: m) }
    public static func timeout(_ m: String) -> ServiceError { .init(status: 504, error: "timeout", message: m) }
}

extension ServiceError {
    /// Maps a `DecodingError` from a request body into a 422 with the offending path.
    public static func from(decoding error: DecodingError, prefix: String = "body") -> ServiceError {
        func path(_ keys: [any CodingKey]) -> String {
            ([prefix] + keys.map { $0.intValue.map(String.init) ?? snakeCase($0.stringValue) }).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            return .validation(path(ctx.codingPath + [key]), "field required")
        case .typeMismatch(let type, let ctx):
            return .validation(path(ctx.codingPath), "expected \(Self.typeName(type))")
        case .valueNotFound(let type, let ctx):
            return .validation(path(ctx.codingPath), "expected \(Self.typeName(type)), got null")
        case .dataCorrupted(let ctx):
            if ctx.codingPath.isEmpty { return .badRequest("request body is not valid JSON", code: "invalid_json") }
            return .validation(path(ctx.codingPath), ctx.debugDescription)
        @unknown default:
            return .validation(prefix, "invalid request")
        }
    }

    /// `fullName` → `full_name`: decoding reports Swift names; clients sent snake_case.
    static func snakeCase(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out
    }

    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is String.Type: return "string"
        case is Int.Type, is Int64.Type, is Int32.Type: return "integer"
        case is Double.Type: return "number"
        case is Bool.Type: return "boolean"
        default:
            let n = String(describing: t)
            if n.hasPrefix("Array") { return "array" }
            if n.hasPrefix("Dictionary") { return "object" }
            return "object"
        }
    }
}

/// An error of a lower layer that has a meaning for the client: a dependency that cannot be reached right
/// now (503 `unavailable`, the request may succeed if retried shortly) or a value the database refused (422).
/// Callers answer with `serviceError` instead of a 500.
public protocol ClientMeaningfulError: Error {
    var serviceError: ServiceError? { get }
}
