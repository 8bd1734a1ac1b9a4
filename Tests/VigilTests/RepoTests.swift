import Foundation
import Testing

@testable import Repo

@Suite struct RepoURLPolicyTests {
    @Test func cloneURLsByKind() throws {
        let strict = RepoURLPolicy(allowLocal: false)
        #expect(try strict.parse("https://github.com/acme/app.git").kind == .https)
        #expect(try strict.parse("ssh://git@gitlab.example.com:2222/acme/app.git").port == 2222)
        #expect(try strict.parse("git@github.com:acme/app.git").host == "github.com")
        for bad in [
            "file:///srv/repo", "http://git.example.com/a.git", "ftp://x/y", "-oProxyCommand=id", "ext::sh -c id", "https://u:p@github.com/a/b",
            "git@github.com:-upload-pack=id", "", "https:///nohost",
        ] {
            #expect(throws: RepoError.self, "\(bad)") { try strict.parse(bad) }
        }
        let local = RepoURLPolicy(allowLocal: true)
        #expect(try local.parse("file:///srv/repo").kind == .file)
        #expect(try local.parse("http://127.0.0.1:9418/a.git").kind == .http)
    }

    @Test func addressesAreCheckedUnlessLocalIsAllowed() throws {
        let strict = RepoURLPolicy(allowLocal: false)
        for url in ["https://127.0.0.1/a.git", "ssh://10.0.0.8/a.git", "git@169.254.169.254:a/b.git", "https://[::1]/a.git"] {
            #expect(throws: RepoError.self, "\(url)") { try strict.check(url) }
        }
        try RepoURLPolicy(allowLocal: true).check("https://127.0.0.1/a.git")
    }

    @Test func rawLogParserFollowsCommitsAcrossChunks() {
        let log =
            "\u{1}aaaa\0\n:000000 100644 0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 A\0a.txt\0"
            + ":000000 120000 0000000000000000000000000000000000000000 2222222222222222222222222222222222222222 A\0link\0"
            + "\u{1}bbbb\0\n:100644 000000 1111111111111111111111111111111111111111 0000000000000000000000000000000000000000 D\0a.txt\0"
        var parser = RawLogParser()
        var seen: [String] = []
        for chunk in Array(log.utf8).chunks(ofCount: 7) {
            parser.feed(Data(chunk)) { order, commit, blob, mode, path in seen.append("\(order) \(commit) \(blob.prefix(4)) \(mode) \(path)") }
        }
        #expect(seen == ["1 aaaa 1111 100644 a.txt", "1 aaaa 2222 120000 link"])
        #expect(parser.commits == 2)
    }
}

extension Array {
    fileprivate func chunks(ofCount n: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: n).map { self[$0..<Swift.min($0 + n, count)] }
    }
}
