import Foundation
import VigilCore

/// Bounded parallelism on dedicated threads: collectors block on network I/O, so they must not
/// occupy the cooperative pool or depend on how many threads Dispatch is willing to start.
public enum Parallel {
    /// Maps `items` with at most `width` threads; results keep input order. The first error is rethrown
    /// after all started work finished.
    public static func map<T, R>(_ items: [T], width: Int = 8, _ body: @escaping (T) throws -> R) throws -> [R] {
        if items.isEmpty { return [] }
        if items.count == 1 { return [try body(items[0])] }
        let work = ParallelWork(items, body)
        let n = min(width, items.count)
        for _ in 0..<n {
            let t = Thread { work.loop() }
            t.stackSize = 1 << 20
            t.start()
        }
        for _ in 0..<n { work.done.wait() }
        return try work.results.map { try $0!.get() }
    }

    /// Runs blocking work on a fresh thread and awaits it.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            let t = Thread { cont.resume(with: Result { try body() }) }
            t.stackSize = 1 << 20
            t.start()
        }
    }
}

/// The shared state of one `Parallel.map`: the next item to take and the results so far.
///
/// `@unchecked Sendable` is safe because `next` and `results` are read and written only under `lock`,
/// `items` and `body` are never mutated, and `map` reads `results` only after every thread signalled `done`.
final class ParallelWork<T, R>: @unchecked Sendable {
    let lock = NSLock()
    let items: [T]
    let body: (T) throws -> R
    var results: [Result<R, any Error>?]
    var next = 0
    let done = DispatchSemaphore(value: 0)
    init(_ items: [T], _ body: @escaping (T) throws -> R) {
        self.items = items
        self.body = body
        results = Array(repeating: nil, count: items.count)
    }
    func loop() {
        while true {
            lock.lock()
            let i = next
            next += 1
            lock.unlock()
            if i >= items.count { break }
            let r = Result { try body(items[i]) }
            lock.lock()
            results[i] = r
            lock.unlock()
        }
        done.signal()
    }
}

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

/// Finds values that look like credentials in configuration text. Reports kinds and names, never values.
public enum SecretScanner {
    static let valuePatterns: [(String, String)] = [
        ("aws_access_key_id", "(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
        ("aws_secret_access_key", "(?i)aws_?secret_?access_?key\\s*[=:]\\s*['\"]?[A-Za-z0-9/+=]{40}"),
        ("private_key", "-----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
        ("github_token", "gh[pousr]_[A-Za-z0-9]{36}"),
        ("slack_token", "xox[abprs]-[A-Za-z0-9-]{10,}"),
        ("stripe_secret_key", "sk_live_[A-Za-z0-9]{16,}"),
        ("password_assignment", "(?i)(password|passwd|pwd|secret|api_?key|token)\\s*[=:]\\s*['\"]?[^\\s'\"$]{8,}"),
    ]
    static let compiled: [(String, NSRegularExpression)] = valuePatterns.map { ($0.0, try! NSRegularExpression(pattern: $0.1)) }
    static let secretName = try! NSRegularExpression(pattern: "(?i)(password|passwd|secret|token|api_?key|private_?key|credential|access_?key)")
    /// Values that are references, not secrets (ARNs, SSM/Secrets Manager paths, empty placeholders).
    static let reference = try! NSRegularExpression(pattern: "^(arn:|\\{\\{resolve:|ssm:|/|\\$\\{)")

    /// Kinds of secrets found in free text (user data, scripts).
    public static func kinds(in text: String) -> [String] {
        let range = NSRange(text.startIndex..., in: text)
        return compiled.filter { $0.1.firstMatch(in: text, range: range) != nil }.map(\.0)
    }

    /// Names of environment variables whose value looks like a secret.
    public static func secretVariables(_ env: [String: String]) -> [String] {
        env.compactMap { name, value -> String? in
            let v = value.trimmingCharacters(in: .whitespaces)
            if v.isEmpty || reference.firstMatch(in: v, range: NSRange(v.startIndex..., in: v)) != nil { return nil }
            if !kinds(in: v).isEmpty { return name }
            let nameLooksSecret = secretName.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
            return nameLooksSecret && v.count >= 8 ? name : nil
        }.sorted()
    }
}

public enum Dates {
    public static func parse(_ s: String?) -> Date? {
        guard let s, !s.isEmpty else { return nil }
        if let d = Timestamp.parse(s) { return d }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s.replacingOccurrences(of: " ", with: "T"))
    }
    public static func days(since d: Date?, now: Date) -> Double? {
        d.map { (now.timeIntervalSince($0) / 86400).rounded(.down) }
    }
}
