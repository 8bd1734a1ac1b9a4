import Foundation
import ScanEngine
import Synchronization
import VigilCore

/// Bounds of one repository scan.
public struct RepoLimits: Sendable {
    /// The whole scan (fetch, history walk, reading blobs); past it the scan fails with that reason.
    public var seconds: Double = 300
    /// Files over this size are skipped (and counted), like binary files.
    public var maxBlobBytes: Int = 5 << 20
    /// Secrets reported at most (the rest is counted).
    public var maxFindings: Int = 5000
    public init(seconds: Double = 300, maxBlobBytes: Int = 5 << 20, maxFindings: Int = 5000) {
        self.seconds = seconds
        self.maxBlobBytes = maxBlobBytes
        self.maxFindings = maxFindings
    }
}

/// Live progress of a repository scan part, updated by the scan as it goes and read by whoever reports it.
public final class RepoProgress: Sendable {
    public struct State: Codable, Sendable, Equatable {
        /// `fetching`, `walking_history`, `reading_files`, `checking_lockfiles`, `running_semgrep`.
        public var phase = "fetching"
        public var percent = 0
        public var commits = 0
        public var filesTotal = 0
        public var filesScanned = 0
        public var bytesScanned = 0
        public var secrets = 0
    }
    let state = Mutex(State())
    public init() {}
    public var snapshot: State { state.withLock { $0 } }
    public func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
}

/// What a secrets scan read.
public struct RepoScanStats: Codable, Sendable, Equatable {
    public var commits = 0
    public var treeFiles = 0
    public var blobsScanned = 0
    public var bytesScanned = 0
    public var skippedLarge = 0
    public var skippedBinary = 0
    public var secrets = 0
    public var secondsHistory = 0.0
    public var secondsBlobs = 0.0
    public init() {}
}

/// Secrets in the default branch's tree and in every commit of every branch and tag. History is walked once
/// (`git log --raw` over all refs, oldest first) to learn, for each file version (blob), the first commit and
/// path that introduced it; each blob is then read once (`git cat-file --batch`) and scanned once, however many
/// commits hold it. A secret is identified by its file and a keyed digest of its value: the same secret in
/// later versions of the file is the same finding, `in_history_only` when the branch's tree no longer has it.
public enum RepoSecretsScan {
    struct Introduced {
        var order: Int
        var commit: String
        var path: String
    }

    struct Occurrence {
        var detector: String
        var category: String
        var severity: String
        var preview: String
        var file: String
        var treeLine: Int?
        var historyLine: Int?
        var commit: String?
        var commitOrder: Int
    }

    static let lockfiles: Set<String> = [
        "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Cargo.lock", "go.sum", "Gemfile.lock", "composer.lock",
        "Package.resolved", "Pipfile.lock", "packages.lock.json", "mix.lock", "pubspec.lock",
    ]

    public static func run(
        dir: String, branch: String, head: String, git: Git, limits: RepoLimits, digestKey: [UInt8], account: String,
        progress: RepoProgress = RepoProgress()
    ) throws -> (resources: [Resource], stats: RepoScanStats) {
        progress.update {
            $0.phase = "walking_history"
            $0.percent = 10
        }
        var stats = RepoScanStats()
        let started = Date()
        // The tree of the branch: blob → paths (regular files only; symlinks and submodules are not content).
        var treePaths: [String: [String]] = [:]
        let tree = try git.output(["ls-tree", "-r", "-z", "--full-tree", head], cwd: dir, limit: 256 << 20)
        for entry in tree.split(separator: 0) {
            guard let tab = entry.firstIndex(of: 9) else { continue }
            let meta = entry[entry.startIndex..<tab].split(separator: 32)
            guard meta.count == 3, meta[0].elementsEqual("100644".utf8) || meta[0].elementsEqual("100755".utf8) else { continue }
            treePaths[String(decoding: meta[2], as: UTF8.self), default: []].append(String(decoding: entry[(tab + 1)...], as: UTF8.self))
            stats.treeFiles += 1
        }
        // History, oldest first: the first commit and path of every blob.
        var introduced: [String: Introduced] = [:]
        var order: [String] = []
        var parser = RawLogParser()
        try git.run(["log", "--all", "--reverse", "--no-renames", "--raw", "--no-abbrev", "--root", "-z", "--format=%x01%H"], cwd: dir) { chunk in
            parser.feed(chunk) { commitOrder, commit, newBlob, mode, path in
                guard mode == "100644" || mode == "100755" else { return }
                if introduced[newBlob] == nil {
                    introduced[newBlob] = Introduced(order: commitOrder, commit: commit, path: path)
                    order.append(newBlob)
                }
            }
            progress.update { $0.commits = parser.commits }
            if Date().timeIntervalSince(started) > limits.seconds {
                throw RepoError("the history is too long to scan within \(Int(limits.seconds)) s (stopped after \(parser.commits) commits)")
            }
        }
        stats.commits = parser.commits
        for (blob, _) in treePaths where introduced[blob] == nil { order.append(blob) }
        stats.secondsHistory = Date().timeIntervalSince(started)

        // Sizes first, so a huge file is skipped without being read.
        var sizes: [String: Int] = [:]
        var checkParser = LineParser()
        try git.run(["cat-file", "--batch-check"], cwd: dir, stdin: Data((order.joined(separator: "\n") + "\n").utf8)) { chunk in
            checkParser.feed(chunk) { line in
                let parts = line.split(separator: " ")
                if parts.count == 3, parts[1] == "blob", let n = Int(parts[2]) { sizes[String(parts[0])] = n }
            }
        }
        let wanted = order.filter { blob in
            guard let n = sizes[blob] else { return false }
            if n > limits.maxBlobBytes {
                stats.skippedLarge += 1
                return false
            }
            return true
        }

        var found: [String: Occurrence] = [:]
        let blobsStarted = Date()
        let total = wanted.count
        progress.update {
            $0.phase = "reading_files"
            $0.percent = 30
            $0.filesTotal = total
        }
        var reader = BatchReader()
        try git.run(["cat-file", "--batch"], cwd: dir, stdin: Data((wanted.joined(separator: "\n") + "\n").utf8)) { chunk in
            try reader.feed(chunk) { oid, content in
                let paths = treePaths[oid] ?? []
                let first = introduced[oid]
                let name = ((paths.first ?? first?.path ?? "") as NSString).lastPathComponent
                let isBinary = content.withUnsafeBytes { raw in raw.prefix(8000).contains(0) }
                if isBinary {
                    stats.skippedBinary += 1
                    return
                }
                stats.blobsScanned += 1
                stats.bytesScanned += content.count
                if stats.blobsScanned % 64 == 0 {
                    let (n, bytes, secrets) = (stats.blobsScanned, stats.bytesScanned, found.count)
                    progress.update {
                        $0.filesScanned = n
                        $0.bytesScanned = bytes
                        $0.secrets = secrets
                        $0.percent = 30 + 69 * n / max(1, total)
                    }
                }
                let matches = content.withUnsafeBytes { raw in
                    SecretDetectors.scan(
                        raw.bindMemory(to: UInt8.self), limit: 200, generic: !lockfiles.contains(name), digestKey: digestKey)
                }
                for m in matches {
                    guard let digest = m.digest else { continue }
                    if let first {
                        let key = first.path + "\u{0}" + digest
                        var o =
                            found[key]
                            ?? Occurrence(
                                detector: m.detector, category: m.category, severity: m.severity, preview: m.preview, file: first.path,
                                commitOrder: Int.max)
                        if first.order < o.commitOrder {
                            o.commitOrder = first.order
                            o.commit = first.commit
                            o.historyLine = m.line
                        }
                        found[key] = o
                    }
                    for path in paths {
                        let key = path + "\u{0}" + digest
                        var o =
                            found[key]
                            ?? Occurrence(
                                detector: m.detector, category: m.category, severity: m.severity, preview: m.preview, file: path,
                                commit: first?.commit, commitOrder: first?.order ?? Int.max)
                        o.treeLine = m.line
                        found[key] = o
                    }
                }
                if Date().timeIntervalSince(started) > limits.seconds {
                    throw RepoError("the repository is too large to scan within \(Int(limits.seconds)) s (stopped after \(stats.blobsScanned) files)")
                }
            }
        }
        stats.secondsBlobs = Date().timeIntervalSince(blobsStarted)
        stats.secrets = found.count

        var resources: [Resource] = []
        for (key, o) in found.sorted(by: { ($0.value.file, $0.key) < ($1.value.file, $1.key) }).prefix(limits.maxFindings) {
            let digest = key.split(separator: "\u{0}").last.map(String.init) ?? ""
            let line = o.treeLine ?? o.historyLine ?? 0
            resources.append(
                Resource(
                    provider: "repo", account: account, region: "global", service: "repo", type: "repo.secret",
                    id: "repo:\(account)/\(o.file)#\(digest.prefix(16))", name: "\(o.file):\(line)",
                    attributes: [
                        "detector": .string(o.detector), "category": .string(o.category), "detector_severity": .string(o.severity),
                        "file": .string(o.file), "line": .number(Double(line)), "commit": o.commit.map(JSONValue.string) ?? .null,
                        "commit_line": o.historyLine.map { .number(Double($0)) } ?? .null,
                        "in_history_only": .bool(o.treeLine == nil), "preview": .string(o.preview), "branch": .string(branch),
                    ]))
        }
        return (resources, stats)
    }
}

/// `git log --raw -z --format=%x01%H`: a commit is `\u{1}<sha>\0`, each change `:<modes> <old> <new> <status>\0<path>\0`.
struct RawLogParser {
    var pending = Data()
    var commit = ""
    var commits = 0
    var header: [Substring]? = nil

    /// `change(commitNumber, commit, blob, mode, path)` for every added or modified file.
    mutating func feed(_ chunk: Data, _ change: (_ order: Int, _ commit: String, _ blob: String, _ mode: String, _ path: String) -> Void) {
        pending.append(chunk)
        var start = pending.startIndex
        while let nul = pending[start...].firstIndex(of: 0) {
            var token = pending[start..<nul]
            start = nul + 1
            while let f = token.first, f == 10 { token = token.dropFirst() }
            if token.first == 1 {
                commit = String(decoding: token.dropFirst(), as: UTF8.self)
                commits += 1
                header = nil
            } else if token.first == 58 {  // ':'
                header = String(decoding: token.dropFirst(), as: UTF8.self).split(separator: " ")
            } else if let h = header, h.count >= 5 {
                header = nil
                let newBlob = String(h[3])
                guard !newBlob.allSatisfy({ $0 == "0" }), h[4] != "D" else { continue }
                change(commits, commit, newBlob, String(h[1]), String(decoding: token, as: UTF8.self))
            }
        }
        pending = Data(pending[start...])
    }
}

/// Newline-separated lines arriving in chunks.
struct LineParser {
    var pending = Data()
    mutating func feed(_ chunk: Data, _ line: (String) -> Void) {
        pending.append(chunk)
        var start = pending.startIndex
        while let nl = pending[start...].firstIndex(of: 10) {
            line(String(decoding: pending[start..<nl], as: UTF8.self))
            start = nl + 1
        }
        pending = Data(pending[start...])
    }
}

/// `git cat-file --batch` output: `<oid> <type> <size>\n<content>\n` per object (`<oid> missing\n` when absent).
struct BatchReader {
    var buffer = Data()
    var offset = 0

    mutating func feed(_ chunk: Data, _ object: (_ oid: String, _ content: Data) throws -> Void) throws {
        buffer.append(chunk)
        while true {
            let base = buffer.startIndex + offset
            guard let nl = buffer[base...].firstIndex(of: 10) else { break }
            let header = String(decoding: buffer[base..<nl], as: UTF8.self).split(separator: " ")
            if header.count == 2, header[1] == "missing" {
                offset = nl + 1 - buffer.startIndex
                continue
            }
            guard header.count == 3, let size = Int(header[2]) else { throw RepoError("unexpected output from git cat-file", permanent: false) }
            let bodyStart = nl + 1
            guard buffer.endIndex >= bodyStart + size + 1 else { break }
            try object(String(header[0]), buffer[bodyStart..<(bodyStart + size)])
            offset = bodyStart + size + 1 - buffer.startIndex
        }
        // Drop what was consumed once it is a large share of the buffer (keeps appends cheap).
        if offset > 0 && (offset > 1 << 20 || offset == buffer.count) {
            buffer = Data(buffer[(buffer.startIndex + offset)...])
            offset = 0
        }
    }
}
