import Foundation
import VigilCore

/// Facts derived from IAM-style policy documents (resource policies, key policies, trust policies).
public struct PolicyFacts: Sendable {
    public var allowsPublicPrincipal = false
    public var deniesInsecureTransport = false
    public var grantsFullAdmin = false
    /// Trust policies: another account may assume without sts:ExternalId (or an org/MFA condition).
    public var crossAccountWithoutExternalId = false

    /// A policy document as AWS returns it (plain or percent-encoded JSON), or nil.
    public static func parse(_ text: String?) -> [String: Any]? {
        guard let text, !text.isEmpty else { return nil }
        let decoded = text.hasPrefix("%7B") || text.hasPrefix("%7b") ? (text.removingPercentEncoding ?? text) : text
        return (try? JSONSerialization.jsonObject(with: Data(decoded.utf8))) as? [String: Any]
    }

    public init(document: String?, ownAccount: String = "") {
        guard let doc = Self.parse(document) else { return }
        for st in Self.statements(doc) {
            let effect = st["Effect"] as? String ?? ""
            let condition = st["Condition"] as? [String: Any] ?? [:]
            let principals = Self.principals(st["Principal"])
            if effect == "Allow" {
                if Self.isPublic(statement: st) { allowsPublicPrincipal = true }
                let actions = Self.strings(st["Action"])
                let resources = Self.strings(st["Resource"])
                if st["Principal"] == nil, actions.contains("*"), resources.contains("*"), condition.isEmpty { grantsFullAdmin = true }
                let conditionText = "\(condition)".lowercased()
                let guarded =
                    conditionText.contains("sts:externalid") || conditionText.contains("aws:principalorgid")
                    || conditionText.contains("aws:multifactorauthpresent")
                for p in principals where p != "*" {
                    if let account = Self.account(of: p), account != ownAccount, !guarded { crossAccountWithoutExternalId = true }
                }
            } else if effect == "Deny" {
                let conditionText = "\(condition)".lowercased()
                if conditionText.contains("aws:securetransport") && conditionText.contains("false") { deniesInsecureTransport = true }
            }
        }
    }

    /// The statements of a policy document (a single statement object counts as a list of one).
    public static func statements(_ doc: [String: Any]) -> [[String: Any]] {
        if let one = doc["Statement"] as? [String: Any] { return [one] }
        return doc["Statement"] as? [[String: Any]] ?? []
    }

    /// An Allow to everyone (`*`) with no condition: what makes a resource policy public.
    public static func isPublic(statement st: [String: Any]) -> Bool {
        (st["Effect"] as? String) == "Allow" && principals(st["Principal"]).contains("*") && (st["Condition"] as? [String: Any] ?? [:]).isEmpty
    }

    static func strings(_ v: Any?) -> [String] {
        if let s = v as? String { return [s] }
        return v as? [String] ?? []
    }

    /// "*" for public principals; AWS account ARNs/ids otherwise (services are ignored).
    static func principals(_ v: Any?) -> [String] {
        if let s = v as? String { return [s] }
        guard let m = v as? [String: Any] else { return [] }
        return strings(m["AWS"]) + (strings(m["CanonicalUser"]).contains("*") ? ["*"] : [])
    }

    static func account(of principal: String) -> String? {
        if principal.count == 12, principal.allSatisfy(\.isNumber) { return principal }
        let parts = principal.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count >= 5 && parts[0] == "arn" ? String(parts[4]) : nil
    }
}
