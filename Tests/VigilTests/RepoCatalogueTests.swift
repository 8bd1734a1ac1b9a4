import Foundation
import Testing
import VigilCore

@testable import Repo
@testable import ScanEngine

/// A generated git repository with a secret of every detector kind, each in a file of its own: half of them
/// removed by a later commit (history only), plus a file of every decoy kind. The repository scan finds every
/// planted secret at its file, line and commit, says which are only in history, and reports nothing else.
@Suite struct RepoCatalogueTests {
    func git(_ args: [String], _ cwd: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        p.environment = ["GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "HOME": "/tmp"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func everyDetectorKindInTreeAndHistoryAndNoDecoy() throws {
        let dir = NSTemporaryDirectory() + "catalogue-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/secrets", withIntermediateDirectories: true)
        _ = try git(["init", "-q", "-b", "main"], dir)
        let samples = SecretDetectorCatalogueTests.samples.sorted { $0.key < $1.key }
        for (id, sample) in samples {
            try ("# \(id)\n" + sample + "\n").write(toFile: dir + "/secrets/\(id).conf", atomically: true, encoding: .utf8)
        }
        try (SecretDetectorCatalogueTests.decoys.joined(separator: "\n") + "\n").write(
            toFile: dir + "/decoys.conf", atomically: true, encoding: .utf8)
        _ = try git(["add", "-A", "-f"], dir)
        _ = try git(["commit", "-q", "-m", "secrets"], dir)
        let first = try git(["rev-parse", "HEAD"], dir)
        // Every other one removed: from now on only in history.
        let removed = Set(samples.enumerated().filter { $0.offset % 2 == 1 }.map(\.element.key))
        for id in removed { _ = try git(["rm", "-q", "secrets/\(id).conf"], dir) }
        _ = try git(["commit", "-q", "-m", "remove half"], dir)
        let head = try git(["rev-parse", "HEAD"], dir)

        let git = Git(policy: RepoURLPolicy(allowLocal: true), deadline: Date().addingTimeInterval(60))
        let (resources, stats) = try RepoSecretsScan.run(
            dir: dir, branch: "main", head: head, git: git, limits: RepoLimits(), digestKey: Array(repeating: 7, count: 32),
            account: "local/catalogue")
        #expect(stats.commits == 2)
        func str(_ r: Resource, _ k: String) -> String? { if case .string(let v)? = r.attributes[k] { v } else { nil } }
        func int(_ r: Resource, _ k: String) -> Int? { if case .number(let v)? = r.attributes[k] { Int(v) } else { nil } }
        #expect(!resources.contains { str($0, "file") == "decoys.conf" }, "a decoy was reported")
        for (id, _) in samples {
            let file = "secrets/\(id).conf"
            let here = resources.filter { str($0, "file") == file }
            guard let r = here.first(where: { str($0, "detector") == id }) else {
                Issue.record("\(id) not found in \(file): \(here.map { str($0, "detector") ?? "?" })")
                continue
            }
            let historyOnly = removed.contains(id)
            #expect(r.attributes["in_history_only"] == .bool(historyOnly), "\(id) in_history_only")
            #expect(str(r, "commit") == first, "\(id) commit")
            #expect((historyOnly ? int(r, "commit_line") : int(r, "line")) == 2, "\(id) line")
        }
        // Nothing but the planted files.
        #expect(Set(resources.compactMap { str($0, "file") }).isSubset(of: Set(samples.map { "secrets/\($0.key).conf" })))
    }
}
