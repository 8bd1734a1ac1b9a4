import Foundation
import ScanEngine
import Synchronization
import VigilCore
import VigilCrypto

/// Semgrep (installed from PyPI by the project's scripts) with the rule set shipped in `contracts/semgrep/`:
/// no registry, no metrics, no version check, no network. Its results become `repo.code` resources.
public struct Semgrep: Sendable {
    /// The executable, resolved once.
    public let executable: String

    /// `semgrep` found as given (a path) or on PATH; nil when it is not installed.
    public static func locate(_ configured: String) -> Semgrep? {
        let fm = FileManager.default
        if configured.contains("/") { return fm.isExecutableFile(atPath: configured) ? Semgrep(executable: configured) : nil }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(configured)"
            if fm.isExecutableFile(atPath: path) { return Semgrep(executable: path) }
        }
        return nil
    }

    /// The shipped rules written once per process to a private directory.
    static let rulesDir = Mutex<String?>(nil)
    static func rules() throws -> String {
        try rulesDir.withLock { dir in
            if let d = dir, FileManager.default.fileExists(atPath: d) { return d }
            let d = NSTemporaryDirectory() + "vigil-semgrep-rules-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for (name, text) in SemgrepRules.files { try Data(text.utf8).write(to: URL(fileURLWithPath: d + "/" + name)) }
            dir = d
            return d
        }
    }

    public static var ruleCount: Int {
        SemgrepRules.files.values.reduce(0) { n, text in n + text.components(separatedBy: "\n  - id: ").count - 1 }
    }

    public struct Match: Sendable, Equatable {
        public var rule: String
        public var path: String
        public var line: Int
        public var endLine: Int
        public var severity: String
        public var message: String
        public var cwe: String?
        public var category: String?
    }

    /// Runs the rules over a working tree; killed at the deadline.
    public func scan(_ dir: String, deadline: Date) throws -> (matches: [Match], errors: Int, files: Int) {
        let home = NSTemporaryDirectory() + "vigil-semgrep-home-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: home) }
        let out = home + "/out.json"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = [
            "scan", "--config", try Self.rules(), "--json", "--output", out, "--metrics=off", "--disable-version-check", "--quiet", "--jobs", "1",
            "--timeout", "20", "--max-target-bytes", "1000000", "--exclude", ".git", dir,
        ]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home
        env["SEMGREP_SEND_METRICS"] = "off"
        env["SEMGREP_ENABLE_VERSION_CHECK"] = "0"
        env["XDG_CONFIG_HOME"] = home
        for k in env.keys where k.hasPrefix("VIGIL_") || k.hasSuffix("_KEY") || k.hasSuffix("_SECRET") || k.hasSuffix("_TOKEN") { env[k] = nil }
        p.environment = env
        p.currentDirectoryURL = URL(fileURLWithPath: home)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + max(0.1, deadline.timeIntervalSinceNow), execute: killer)
        p.waitUntilExit()
        killer.cancel()
        guard Date() < deadline else { throw RepoError("semgrep did not finish within the scan's time limit") }
        // 0: no findings, 1: findings; anything else is a failure of semgrep itself.
        guard p.terminationStatus == 0 || p.terminationStatus == 1, let data = FileManager.default.contents(atPath: out),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { throw RepoError("semgrep failed (exit \(p.terminationStatus))", permanent: false) }
        var matches: [Match] = []
        for case let r as [String: Any] in root["results"] as? [Any] ?? [] {
            guard let id = r["check_id"] as? String, var path = r["path"] as? String,
                let start = (r["start"] as? [String: Any])?["line"] as? Int, let extra = r["extra"] as? [String: Any]
            else { continue }
            if path.hasPrefix(dir + "/") { path = String(path.dropFirst(dir.count + 1)) }
            let meta = extra["metadata"] as? [String: Any] ?? [:]
            matches.append(
                Match(
                    rule: String(id.split(separator: ".").last ?? Substring(id)), path: path, line: start,
                    endLine: ((r["end"] as? [String: Any])?["line"] as? Int) ?? start,
                    severity: (extra["severity"] as? String ?? "INFO").uppercased(),
                    message: String((extra["message"] as? String ?? "").prefix(500)),
                    cwe: (meta["cwe"] as? String) ?? (meta["cwe"] as? [String])?.first,
                    category: meta["category"] as? String))
        }
        let scanned = (root["paths"] as? [String: Any])?["scanned"] as? [Any]
        return (matches, (root["errors"] as? [Any])?.count ?? 0, scanned?.count ?? 0)
    }
}

/// The `semgrep_scan`: a scratch working tree of the branch head (symlinks removed, so nothing outside it is
/// read), the shipped rules run over it, one `repo.code` resource per match, identified by rule, file and a
/// digest of the matched code (so a finding keeps its identity when lines above it move).
public enum RepoSemgrepScan {
    public static func run(
        mirror: String, branch: String, head: String, semgrep: Semgrep, account: String, deadline: Date
    ) throws -> [Resource] {
        let (work, _) = try Scratch.checkout(mirror: mirror, commit: head, deadline: deadline)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let fm = FileManager.default
        if let walker = fm.enumerator(atPath: work) {
            for case let rel as String in walker where !rel.hasPrefix(".git/") {
                if (try? fm.destinationOfSymbolicLink(atPath: work + "/" + rel)) != nil { try? fm.removeItem(atPath: work + "/" + rel) }
            }
        }
        let (matches, errors, files) = try semgrep.scan(work, deadline: deadline)
        var seen: [String: Int] = [:]
        var resources: [Resource] = []
        for m in matches.sorted(by: { ($0.path, $0.line, $0.rule) < ($1.path, $1.line, $1.rule) }) {
            let lines = (try? String(contentsOfFile: work + "/" + m.path, encoding: .utf8))?.components(separatedBy: "\n") ?? []
            let code =
                m.line >= 1 && m.endLine <= lines.count && m.line <= m.endLine
                ? lines[(m.line - 1)..<m.endLine].map { $0.filter { !$0.isWhitespace } }.joined() : "\(m.line)"
            var key = String(Sodium.hex(Sodium.sha256(Array((m.rule + "\u{0}" + m.path + "\u{0}" + code).utf8))).prefix(16))
            seen[key, default: 0] += 1
            if seen[key]! > 1 { key += "-\(seen[key]!)" }  // the same code twice in one file
            let severity = ["ERROR": "high", "WARNING": "medium"][m.severity] ?? "low"
            resources.append(
                Resource(
                    provider: "repo", account: account, region: "global", service: "repo", type: "repo.code",
                    id: "repo:\(account)/\(m.path)#\(m.rule)@\(key)", name: "\(m.path):\(m.line)",
                    attributes: [
                        "rule": .string(m.rule), "file": .string(m.path), "line": .number(Double(m.line)), "end_line": .number(Double(m.endLine)),
                        "message": .string(m.message), "code_severity": .string(severity), "cwe": m.cwe.map(JSONValue.string) ?? .null,
                        "code_category": m.category.map(JSONValue.string) ?? .null, "branch": .string(branch),
                    ]))
        }
        resources.append(
            Resource(
                provider: "repo", account: account, region: "global", service: "repo", type: "repo.semgrep", id: "repo:\(account)#semgrep",
                name: "\(account) semgrep",
                attributes: [
                    "branch": .string(branch), "head": .string(head), "files_scanned": .number(Double(files)),
                    "rules": .number(Double(Semgrep.ruleCount)), "matches": .number(Double(matches.count)), "errors": .number(Double(errors)),
                ]))
        return resources
    }
}
