import Foundation
import Testing

@testable import Repo

@Suite struct LockfileTests {
    func read(_ path: String, _ text: String) -> [String] {
        (Lockfiles.reader(for: path)?(text, path) ?? []).map(\.purl).sorted()
    }

    @Test func everyFormat() {
        #expect(
            read(
                "package-lock.json",
                #"{"packages":{"":{"name":"x"},"node_modules/a":{"version":"1.0.0"},"node_modules/a/node_modules/@s/b":{"version":"2.0.0"}}}"#)
                == ["pkg:npm/%40s/b@2.0.0", "pkg:npm/a@1.0.0"])
        #expect(
            read("package-lock.json", #"{"dependencies":{"a":{"version":"1.0.0","dependencies":{"c":{"version":"3.0.0"}}}}}"#) == [
                "pkg:npm/a@1.0.0", "pkg:npm/c@3.0.0",
            ])
        #expect(
            read("yarn.lock", "\"@s/b@^2\", \"@s/b@^2.1\":\n  version \"2.1.0\"\n\nminimist@^1.2.0:\n  version \"1.2.5\"\n") == [
                "pkg:npm/%40s/b@2.1.0", "pkg:npm/minimist@1.2.5",
            ])
        #expect(read("yarn.lock", "__metadata:\n  version: 6\n\n\"lodash@npm:^4.17.21\":\n  version: 4.17.21\n") == ["pkg:npm/lodash@4.17.21"])
        #expect(
            read("requirements-dev.txt", "Requests==2.25.0\nflask[async] == 2.3.3 ; python_version>'3'\n# c\n-e .\ndjango>=4\n") == [
                "pkg:pypi/django", "pkg:pypi/flask@2.3.3", "pkg:pypi/requests@2.25.0",
            ])
        #expect(
            read("poetry.lock", "[[package]]\nname = \"urllib3\"\nversion = \"1.26.4\"\n[package.extras]\nx = \"1\"\n") == ["pkg:pypi/urllib3@1.26.4"]
        )
        #expect(read("Cargo.lock", "version = 3\n\n[[package]]\nname = \"time\"\nversion = \"0.2.22\"\n") == ["pkg:cargo/time@0.2.22"])
        #expect(read("go.sum", "golang.org/x/net v0.10.0 h1:a=\ngolang.org/x/net v0.10.0/go.mod h1:b=\n") == ["pkg:golang/golang.org/x/net@v0.10.0"])
        #expect(
            read(
                "Gemfile.lock",
                "GEM\n  remote: x\n  specs:\n    rack (2.0.8)\n    nokogiri (1.15.0-x86_64-linux)\n      racc (~> 1.4)\n\nPLATFORMS\n  ruby\n") == [
                    "pkg:gem/nokogiri@1.15.0", "pkg:gem/rack@2.0.8",
                ])
        #expect(read("composer.lock", #"{"packages":[{"name":"a/b","version":"v1.2.3"}]}"#) == ["pkg:composer/a/b@1.2.3"])
        #expect(
            read(
                "Package.resolved",
                #"{"pins":[{"identity":"x","location":"https://github.com/apple/swift-log.git","state":{"version":"1.5.3"}}],"version":2}"#) == [
                    "pkg:swift/github.com/apple/swift-log@1.5.3"
                ])
        #expect(
            read(
                "Package.resolved",
                #"{"object":{"pins":[{"package":"x","repositoryURL":"https://github.com/a/b.git","state":{"version":"1.0.0"}}]},"version":1}"#) == [
                    "pkg:swift/github.com/a/b@1.0.0"
                ])
        #expect(read("Pipfile.lock", #"{"default":{"requests":{"version":"==2.31.0"}}}"#) == ["pkg:pypi/requests@2.31.0"])
        #expect(read("package-lock.json", "not json {") == [] && read("README.md", "x").isEmpty)
    }

    @Test func versionOrder() {
        #expect(Versions.compare("4.17.20", "4.17.21") < 0 && Versions.compare("v0.10.0", "0.17.0") < 0)
        #expect(Versions.compare("1.0.0-rc1", "1.0.0") < 0 && Versions.compare("1.0.0rc1", "1.0.0") < 0)
        #expect(Versions.compare("2.0.9.2", "2.0.9") > 0 && Versions.compare("1.2", "1.2.0") == 0 && Versions.compare("10.0", "9.9") > 0)
    }

    @Test func advisoryRanges() {
        let o: [String: Any] = [
            "id": "GHSA-x", "summary": "s", "database_specific": ["severity": "CRITICAL"],
            "affected": [
                [
                    "package": ["ecosystem": "npm", "name": "minimist"],
                    "ranges": [
                        ["type": "SEMVER", "events": [["introduced": "0"], ["fixed": "0.2.4"], ["introduced": "1.0.0"], ["fixed": "1.2.6"]]]
                    ],
                    "versions": ["9.9.9"],
                ]
            ],
        ]
        let a = OSVDatabase.parse(o)[0].1
        #expect(
            a.severity == "critical" && a.affects("1.2.5") && a.affects("0.1.0") && !a.affects("0.2.4") && !a.affects("1.2.6") && a.affects("9.9.9"))
        #expect(a.firstFixed(after: "1.2.5") == "1.2.6")
        #expect(OSVDatabase.parse(o.merging(["withdrawn": "2024-01-01"]) { $1 }).isEmpty)
    }
}

@Suite struct SBOMScanTests {
    func sh(_ args: [String], _ cwd: String) throws { _ = try RepoCatalogueTests().git(args, cwd) }

    @Test func lockfilesOfTheTreeBecomeOneDocument() throws {
        let dir = NSTemporaryDirectory() + "sbom-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/ios", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/api", withIntermediateDirectories: true)
        try #"{"pins":[{"identity":"x","location":"https://github.com/apple/swift-log.git","state":{"version":"1.5.3"}}],"version":2}"#
            .write(toFile: dir + "/ios/Package.resolved", atomically: true, encoding: .utf8)
        try "requests==2.25.0\n".write(toFile: dir + "/api/requirements.txt", atomically: true, encoding: .utf8)
        try "requests==2.25.0\n".write(toFile: dir + "/api/requirements-dev.txt", atomically: true, encoding: .utf8)
        try sh(["init", "-q", "-b", "main"], dir)
        try sh(["add", "-A", "-f"], dir)
        try sh(["commit", "-q", "-m", "x"], dir)
        let git = Git(policy: RepoURLPolicy(allowLocal: true), deadline: Date().addingTimeInterval(30))
        let head = String(decoding: try git.output(["rev-parse", "HEAD"], cwd: dir), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let out = try RepoSBOMScan.run(dir: dir, branch: "main", head: head, git: git, osv: nil, account: "local/x")
        #expect(out.components == 2 && out.vulnerable == 0)
        guard case .array(let files)? = out.resources.last?.attributes["lockfiles"] else {
            Issue.record("no lockfiles")
            return
        }
        #expect(files.count == 3)
    }
}
