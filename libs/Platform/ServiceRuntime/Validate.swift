import Bus
import Contracts
import Foundation
import Store
import Synchronization
import VigilCore

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
