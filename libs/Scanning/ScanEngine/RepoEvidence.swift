import VigilCore

/// The code-security API's scan types (`secrets_scan` runs; the others are refused with the reason).
public enum RepoScanTypes {
    public static let all = ["secrets_scan", "sbom_scan", "semgrep_scan", "deep_ai_scan"]

    /// The rule-id pattern (SQL LIKE) of a scan type's checks: `repo.secrets.%` for `secrets_scan`.
    public static func rulePattern(_ scanType: String) -> String {
        scanType == "secrets_scan" ? "repo.secrets.%" : "repo.\(scanType.dropLast("_scan".count)).%"
    }
}

/// Where a repository finding is, read from its evidence (the `repo.secret` resource's attributes).
public struct RepoEvidence: Sendable {
    public var file: String?
    public var line: Int?
    public var commit: String?
    public var commitLine: Int?
    public var detector: String?
    public var preview: String?
    public var inHistoryOnly: Bool?
    /// For a vulnerable dependency (`sbom_scan`).
    public var dependency: RepoDependency?
    /// For a code issue (`semgrep_scan`).
    public var code: RepoCodeIssue?

    public init(_ e: [String: JSONValue]) {
        func str(_ k: String) -> String? { if case .string(let v)? = e[k] { return v } else { return nil } }
        func int(_ k: String) -> Int? { if case .number(let v)? = e[k] { return Int(v) } else { return nil } }
        file = str("file")
        line = int("line")
        commit = str("commit")
        commitLine = int("commit_line")
        detector = str("detector")
        preview = str("preview")
        if case .bool(let b)? = e["in_history_only"] { inHistoryOnly = b }
        if let package = str("package"), let version = str("version") {
            var advisories: [String] = []
            if case .array(let a)? = e["advisories"] { advisories = a.compactMap { if case .string(let s) = $0 { s } else { nil } } }
            dependency = RepoDependency(
                package: package, version: version, ecosystem: str("ecosystem") ?? "", purl: str("purl") ?? "", fixedVersion: str("fixed_version"),
                advisories: advisories, summary: str("summary"))
        }
        if let rule = str("rule") {
            code = RepoCodeIssue(rule: rule, message: str("message") ?? "", endLine: int("end_line"), cwe: str("cwe"), category: str("code_category"))
        }
    }
}

/// A vulnerable component as repository findings show it.
public struct RepoDependency: Codable, Sendable, Equatable {
    public var package: String
    public var version: String
    public var ecosystem: String
    public var purl: String
    /// The lowest version that fixes every advisory, when one is known.
    public var fixedVersion: String?
    public var advisories: [String]
    public var summary: String?
}

/// A code issue as repository findings show it.
public struct RepoCodeIssue: Codable, Sendable, Equatable {
    public var rule: String
    public var message: String
    public var endLine: Int?
    public var cwe: String?
    public var category: String?
}
