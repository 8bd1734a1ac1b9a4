import Foundation
import ScanEngine
import VigilCore

/// One finding a fix addresses, as the scan recorded it (no secret value: the secret is found again in the
/// file by its keyed digest).
public struct FixTarget: Codable, Sendable, Equatable {
    public var findingId: String
    public var checkId: String
    public var file: String
    public var line: Int?
    /// The first 16 hex digits of the secret's keyed digest (the end of the finding's resource id).
    public var digest: String?
    public var detector: String?
    public var category: String?
    public var inHistoryOnly: Bool
    /// A vulnerable dependency: the package, its ecosystem, the pinned and the first fixed version.
    public var dependency: RepoDependency? = nil

    public init(
        findingId: String, checkId: String, file: String, line: Int?, digest: String?, detector: String?, category: String?, inHistoryOnly: Bool,
        dependency: RepoDependency? = nil
    ) {
        self.findingId = findingId
        self.checkId = checkId
        self.file = file
        self.line = line
        self.digest = digest
        self.detector = detector
        self.category = category
        self.inHistoryOnly = inHistoryOnly
        self.dependency = dependency
    }
}

/// What became of one finding in a fix.
public struct FixOutcome: Codable, Sendable, Equatable {
    public var findingId: String
    /// `fixed`, `history_only` (the tree no longer has it: rotate the key), `not_found` (the file changed since the
    /// scan), `manual` (a dependency whose manifest Vigil does not edit, or with no fixed version).
    public var outcome: String
    public var file: String
    public var variable: String?
    public var message: String
}

/// Options a fix runs with (and a refine changes).
public struct FixOptions: Codable, Sendable, Equatable {
    /// Finding id → the environment variable to read the secret from.
    public var envNames: [String: String]?
    /// The example environment file the variables are listed in (default `.env.example`).
    public var envExample: String?
    public init(envNames: [String: String]? = nil, envExample: String? = nil) {
        self.envNames = envNames
        self.envExample = envExample
    }
}

public struct FixResult: Sendable {
    /// The applicable patch (it removes the secrets, so it holds them: kept sealed, shown only on request).
    public var patch: String
    /// The same patch with every secret value of the touched files replaced by its redacted preview.
    public var redacted: String
    public var outcomes: [FixOutcome]
    public var files: [String]
}

/// Runs a deterministic fix in a scratch clone of the mirror at the branch head: each secret becomes an
/// environment lookup, the variables are listed in `.env.example`, the change is committed and its patch
/// returned. Nothing is pushed here (see `RepoPush`).
public enum RepoFix {
    public static func run(
        mirror: String, head: String, targets: [FixTarget], options: FixOptions, title: String, digestKey: [UInt8], deadline: Date,
        step: (String) throws -> Void
    ) throws -> FixResult {
        try step("checkout")
        let (work, local) = try Scratch.checkout(mirror: mirror, commit: head, deadline: deadline)
        defer { try? FileManager.default.removeItem(atPath: work) }

        var outcomes: [FixOutcome] = []
        var variables: [String] = []
        var values: [(value: String, preview: String)] = []
        var touched: [String] = []
        for t in targets where t.dependency != nil {
            try step("bump \(t.dependency!.package)")
            let o = DependencyBump.apply(work, t)
            outcomes.append(o)
            if o.outcome == "fixed" { touched.append(o.file) }
        }
        let byFile = Dictionary(grouping: targets.filter { $0.dependency == nil }, by: \.file)
        for file in byFile.keys.sorted() {
            let wanted = byFile[file]!
            try step("rewrite \(file)")
            let full = work + "/" + file
            let resolved = URL(fileURLWithPath: full).resolvingSymlinksInPath().path
            var isDir: ObjCBool = false
            guard resolved.hasPrefix(work + "/"), FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue,
                (try? FileManager.default.destinationOfSymbolicLink(atPath: full)) == nil,
                var text = try? String(contentsOfFile: full, encoding: .utf8)
            else {
                for t in wanted {
                    outcomes.append(
                        t.inHistoryOnly
                            ? historyOnly(t)
                            : FixOutcome(
                                findingId: t.findingId, outcome: "not_found", file: file,
                                message: "the file is no longer in the branch (or is not a text file): re-scan"))
                }
                continue
            }
            let name = (file as NSString).lastPathComponent
            let matches = SecretDetectors.scan(
                text, limit: 1000, generic: !RepoSecretsScan.lockfiles.contains(name), digestKey: digestKey, keepValues: true)
            for m in matches { if let v = m.value { values.append((v, m.preview)) } }
            var removeFile = false
            for t in wanted {
                guard !t.inHistoryOnly else {
                    outcomes.append(historyOnly(t))
                    continue
                }
                guard let d = t.digest, let m = matches.first(where: { $0.digest?.hasPrefix(d) == true }), let value = m.value,
                    let edit = SecretRewrite.rewrite(
                        text, path: file, value: value, category: m.category, fallbackName: SecretRewrite.variableName(m.detector),
                        forcedName: options.envNames?[t.findingId].map(SecretRewrite.variableName))
                else {
                    outcomes.append(
                        FixOutcome(
                            findingId: t.findingId, outcome: "not_found", file: file,
                            message: "the secret is no longer in \(file) on the branch: re-scan to update the finding"))
                    continue
                }
                text = edit.text
                removeFile = removeFile || edit.removeFile
                variables.append(edit.variable)
                outcomes.append(
                    FixOutcome(
                        findingId: t.findingId, outcome: "fixed", file: file, variable: edit.variable,
                        message: edit.removeFile
                            ? "removed the key file; load the key from \(edit.variable) or a secret store, and rotate it"
                            : "reads \(edit.variable) from the environment now; rotate the old value, it stays in history"))
            }
            if removeFile {
                _ = try local.output(["rm", "--quiet", "--", file], cwd: work)
                try appendLine(work + "/.gitignore", "/" + file)
                touched.append(file)
            } else if outcomes.contains(where: { $0.file == file && $0.outcome == "fixed" }) {
                try Data(text.utf8).write(to: URL(fileURLWithPath: full))
                touched.append(file)
            }
        }
        guard !touched.isEmpty else {
            throw RepoError("nothing to change on the branch: " + outcomes.map { "\($0.file): \($0.message)" }.joined(separator: "; "))
        }
        try step("env example")
        let example = options.envExample ?? ".env.example"
        let examplePath = work + "/" + example
        if !variables.isEmpty, let updated = SecretRewrite.exampleEnv(try? String(contentsOfFile: examplePath, encoding: .utf8), adding: variables) {
            try FileManager.default.createDirectory(
                atPath: (examplePath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(updated.utf8).write(to: URL(fileURLWithPath: examplePath))
        }
        try step("commit")
        _ = try local.output(["add", "--all"], cwd: work)
        let message = title + "\n\n" + outcomes.map { "- \($0.file): \($0.message)" }.joined(separator: "\n") + "\n"
        _ = try local.output(
            ["-c", "user.name=Vigil", "-c", "user.email=fixes@vigil.invalid", "commit", "--quiet", "--no-verify", "-m", message], cwd: work)
        try step("diff")
        let patch = String(decoding: try local.output(["diff", "--no-color", "--no-ext-diff", "HEAD~1", "HEAD"], cwd: work), as: UTF8.self)
        let files = String(decoding: try local.output(["diff", "--name-only", "HEAD~1", "HEAD"], cwd: work), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        return FixResult(patch: patch, redacted: redact(patch, values), outcomes: outcomes, files: files)
    }

    static func historyOnly(_ t: FixTarget) -> FixOutcome {
        FixOutcome(
            findingId: t.findingId, outcome: "history_only", file: t.file,
            message: "only in history: an edit cannot remove it; rotate the secret (and rewrite history if you must)")
    }

    /// Every known secret value in the patch becomes its preview (longest first, so a value inside another goes with it).
    public static func redact(_ patch: String, _ values: [(value: String, preview: String)]) -> String {
        var out = patch
        for (v, p) in values.sorted(by: { $0.value.count > $1.value.count }) where v.count >= 6 {
            out = out.replacingOccurrences(of: v, with: "[redacted " + p + "]")
        }
        // A removed key file's body is many lines: any line of it that survived (PEM bodies are split) goes too.
        var lines = out.components(separatedBy: "\n")
        var inKey = false
        for i in lines.indices {
            let l = lines[i]
            if l.contains("-----BEGIN") && l.contains("PRIVATE KEY") {
                inKey = true
                continue
            }
            if l.contains("-----END") { inKey = false }
            if inKey, let f = l.first, f == "-" || f == "+" || f == " " { lines[i] = String(f) + "[redacted key material]" }
        }
        out = lines.joined(separator: "\n")
        return out
    }

    static func appendLine(_ path: String, _ line: String) throws {
        var text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        guard !text.components(separatedBy: "\n").contains(line) else { return }
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        text += line + "\n"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }
}

/// Pushes a fix to the repository's remote as a new branch: a scratch clone of the mirror at the fix's base
/// commit, the patch applied and committed, `git push <remote> HEAD:refs/heads/<branch>` (never forced, never
/// the default branch).
public enum RepoPush {
    public static func push(
        _ target: RepoTarget, policy: RepoURLPolicy, base: String, patch: String, branch: String, defaultBranch: String, message: String,
        deadline: Date
    ) throws -> String {
        guard branch != defaultBranch else {
            throw RepoError("a fix never pushes to the default branch (\(defaultBranch))")
        }
        try policy.check(target.cloneURL)
        let (work, local) = try Scratch.checkout(mirror: target.mirrorDir, commit: base, deadline: deadline)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try local.run(["apply", "--index", "--whitespace=nowarn", "-"], cwd: work, stdin: Data(patch.utf8)) { _ in }
        _ = try local.output(
            ["-c", "user.name=Vigil", "-c", "user.email=fixes@vigil.invalid", "commit", "--quiet", "--no-verify", "-m", message], cwd: work)
        let commit = String(decoding: try local.output(["rev-parse", "HEAD"], cwd: work), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let (remote, cleanup) = try GitMirror.authenticated(target, policy: policy, deadline: deadline)
        defer { cleanup() }
        _ = try remote.output(["push", "--quiet", "--no-verify", "--", target.cloneURL, "HEAD:refs/heads/\(branch)"], cwd: work)
        return commit
    }

    /// A branch name git accepts that is not the default branch.
    public static func validBranch(_ b: String) -> Bool {
        !b.isEmpty && b.count <= 200 && !b.hasPrefix("-") && !b.hasPrefix("/") && !b.hasSuffix("/") && !b.hasSuffix(".lock")
            && !b.contains("..") && !b.contains("//") && !b.contains("@{") && !b.hasSuffix(".")
            && !b.contains(where: { $0.isWhitespace || "~^:?*[\\".contains($0) || $0.asciiValue.map { $0 < 32 || $0 == 127 } ?? false })
    }
}

/// A scratch working tree of one commit of a mirror, in a new temporary directory the caller removes. The clone
/// shares the mirror's objects (nothing is copied) and is local, so its git may use local paths.
public enum Scratch {
    public static func checkout(mirror: String, commit: String, deadline: Date) throws -> (dir: String, git: Git) {
        let local = Git(policy: RepoURLPolicy(allowLocal: true), deadline: deadline)
        let work = NSTemporaryDirectory() + "vigil-work-\(UUID().uuidString)"
        do {
            _ = try local.output(["clone", "--quiet", "--shared", "--no-checkout", "--", mirror, work])
            _ = try local.output(["checkout", "--quiet", "--detach", commit], cwd: work)
        } catch {
            try? FileManager.default.removeItem(atPath: work)
            throw error
        }
        return (work, local)
    }
}

/// Bumps a vulnerable dependency to its first fixed version in the manifest that pins it: `requirements*.txt`
/// (`name==x`), `package.json` next to an npm or yarn lockfile (the range keeps its operator), `go.mod` next to
/// `go.sum`. Lockfiles are not rewritten (their hashes come from the package manager): the outcome says to
/// regenerate them. Other ecosystems get a `manual` outcome naming the change.
enum DependencyBump {
    static func apply(_ work: String, _ t: FixTarget) -> FixOutcome {
        guard let d = t.dependency else { return FixOutcome(findingId: t.findingId, outcome: "manual", file: t.file, message: "not a dependency") }
        guard let fixed = d.fixedVersion else {
            return FixOutcome(
                findingId: t.findingId, outcome: "manual", file: t.file,
                message: "no fixed version of \(d.package) is known: replace it or accept the risk")
        }
        let dir = (t.file as NSString).deletingLastPathComponent
        let name = (t.file as NSString).lastPathComponent
        func rel(_ f: String) -> String { dir.isEmpty ? f : dir + "/" + f }
        func edit(_ file: String, _ change: (String) -> String?) -> Bool {
            let path = work + "/" + file
            guard (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) == nil,
                let text = try? String(contentsOfFile: path, encoding: .utf8),
                let out = change(text), out != text
            else { return false }
            return (try? Data(out.utf8).write(to: URL(fileURLWithPath: path))) != nil
        }
        let escaped = NSRegularExpression.escapedPattern(for: d.package)
        var file = t.file
        var changed = false
        var note = ""
        switch (d.ecosystem, name) {
        case ("PyPI", let n) where n.hasPrefix("requirements"):
            // PEP 503: -, _ and . are the same in a name, and case does not matter.
            let loose = d.package.map { "-_.".contains($0) ? "[-_.]" : NSRegularExpression.escapedPattern(for: String($0)) }.joined()
            let pattern =
                "(?im)^(\\s*\(loose)"
                + "(\\[[^\\]]*\\])?\\s*===?\\s*)\(NSRegularExpression.escapedPattern(for: d.version))(\\s*(#.*|;.*)?)$"
            changed = edit(file) { replace($0, pattern, "$1\(fixed)$3") }
        case ("npm", "package-lock.json"), ("npm", "yarn.lock"), ("npm", "npm-shrinkwrap.json"):
            file = rel("package.json")
            let pattern = "(\"\(escaped)\"\\s*:\\s*\")([~^>=]*)[^\"]*(\")"
            changed = edit(file) { replace($0, pattern, "$1$2\(fixed)$3") }
            note = "; regenerate \(name) (npm install / yarn install)"
        case ("Go", "go.sum"):
            file = rel("go.mod")
            let v = fixed.hasPrefix("v") ? fixed : "v" + fixed
            let pattern = "(?m)^(\\s*(?:require\\s+)?\(escaped)\\s+)\(NSRegularExpression.escapedPattern(for: d.version))(\\s*(//.*)?)$"
            changed = edit(file) { replace($0, pattern, "$1\(v)$2") }
            note = "; run go mod tidy to update go.sum"
        default:
            return FixOutcome(
                findingId: t.findingId, outcome: "manual", file: t.file,
                message: "upgrade \(d.package) from \(d.version) to \(fixed) in the manifest of \(t.file) and regenerate it")
        }
        guard changed else {
            return FixOutcome(
                findingId: t.findingId, outcome: "manual", file: file,
                message: "\(d.package) \(d.version) is not pinned in \(file) as expected: upgrade it to \(fixed) by hand")
        }
        return FixOutcome(
            findingId: t.findingId, outcome: "fixed", file: file, message: "\(d.package) \(d.version) → \(fixed) in \(file)" + note)
    }

    static func replace(_ text: String, _ pattern: String, _ template: String) -> String? {
        guard let re = try? NSRegularExpression(pattern: pattern) else { return nil }
        let ns = text as NSString
        guard re.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)) != nil else { return nil }
        return re.stringByReplacingMatches(in: text, range: NSRange(location: 0, length: ns.length), withTemplate: template)
    }
}
