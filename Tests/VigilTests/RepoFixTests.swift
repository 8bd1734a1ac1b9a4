import Foundation
import Testing
import VigilCore

@testable import Repo
@testable import ScanEngine

@Suite struct SecretRewriteTests {
    let aws = "AKIA" + String(repeating: "Q", count: 16)

    @Test func aWholeLiteralBecomesTheLanguagesLookup() throws {
        let py = try #require(
            SecretRewrite.rewrite(
                "DEBUG = 1\nAWS_ACCESS_KEY_ID = \"\(aws)\"\n", path: "app/s.py", value: aws, category: "cloud_key", fallbackName: "X"))
        #expect(py.text == "import os\nDEBUG = 1\nAWS_ACCESS_KEY_ID = os.environ[\"AWS_ACCESS_KEY_ID\"]\n")
        #expect(py.variable == "AWS_ACCESS_KEY_ID")
        let js = try #require(
            SecretRewrite.rewrite(
                "const cfg = { stripeKey: 'sk_live_abc123def456' };", path: "a.ts", value: "sk_live_abc123def456",
                category: "payment_key", fallbackName: "STRIPE"))
        #expect(js.text == "const cfg = { stripeKey: process.env.STRIPE_KEY };")
        let go = try #require(
            SecretRewrite.rewrite(
                "package main\n\nvar token = \"tok_0123456789abcdef\"\n", path: "m.go", value: "tok_0123456789abcdef",
                category: "saas_token", fallbackName: "API_TOKEN"))
        #expect(go.text == "package main\n\nimport \"os\"\n\nvar token = os.Getenv(\"API_TOKEN\")\n")
        let rb = try #require(
            SecretRewrite.rewrite(
                "KEY = \"x\" + \"abcdefghijkl\"\n", path: "a.rb", value: "abcdefghijkl", category: "generic",
                fallbackName: "SECRET_VALUE"))
        #expect(rb.text == "KEY = \"x\" + ENV[\"SECRET_VALUE\"]\n")
    }

    @Test func partOfALiteralIsConcatenatedAndURLsMoveWhole() throws {
        let py = try #require(
            SecretRewrite.rewrite(
                "auth = \"Bearer abcdefghijklmnop\"\n", path: "c.py", value: "abcdefghijklmnop", category: "generic",
                fallbackName: "API_TOKEN"))
        #expect(
            py.text == "import os\nauth = \"Bearer \" + os.environ[\"AUTH\"]\n"
                || py.text == "import os\nauth = \"Bearer \" + os.environ[\"API_TOKEN\"]\n")
        let db = try #require(
            SecretRewrite.rewrite(
                "const url = \"postgres://app:pw12345678@db:5432/app\";", path: "db.js", value: "pw12345678",
                category: "connection_url", fallbackName: "POSTGRES"))
        #expect(db.text == "const url = process.env.DATABASE_URL;")
        let tpl = try #require(
            SecretRewrite.rewrite(
                "const h = `token ${x} ghp_abcdefghijklmnop`;", path: "a.js", value: "ghp_abcdefghijklmnop",
                category: "vcs_token", fallbackName: "GITHUB_TOKEN"))
        #expect(tpl.text == "const h = `token ${x} ${process.env.GITHUB_TOKEN}`;")
    }

    @Test func configurationFilesGetAReferenceAndKeyFilesGo() throws {
        let env = try #require(
            SecretRewrite.rewrite(
                "PORT=1\nSTRIPE_SECRET_KEY=sk_live_abcdefabcdef\n", path: ".env", value: "sk_live_abcdefabcdef",
                category: "payment_key", fallbackName: "STRIPE"))
        #expect(env.text == "PORT=1\nSTRIPE_SECRET_KEY=${STRIPE_SECRET_KEY}\n")
        let yaml = try #require(
            SecretRewrite.rewrite(
                "db:\n  password: hunter2hunter2\n", path: "c.yaml", value: "hunter2hunter2", category: "generic",
                fallbackName: "G", forcedName: "DB_PASSWORD"))
        #expect(yaml.text == "db:\n  password: ${DB_PASSWORD}\n" && yaml.variable == "DB_PASSWORD")
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAABBBB\nCCCC\n-----END OPENSSH PRIVATE KEY-----\n"
        #expect(SecretRewrite.rewrite(key, path: "id", value: "AAAABBBB\nCCCC", category: "private_key", fallbackName: "SSH_KEY")?.removeFile == true)
        let mixed = "k = '''\n" + key + "'''\n"
        let e = try #require(SecretRewrite.rewrite(mixed, path: "k.txt", value: "AAAABBBB\nCCCC", category: "private_key", fallbackName: "SSH_KEY"))
        #expect(e.removeFile == false && e.text == "k = '''\n${SSH_KEY}\n'''\n")
        #expect(SecretRewrite.rewrite("nothing here", path: "a.py", value: "absent-value", category: "generic", fallbackName: "X") == nil)
    }

    @Test func namesAndTheExampleFile() {
        #expect(SecretRewrite.variableName("stripe.secret-key") == "STRIPE_SECRET_KEY")
        #expect(SecretRewrite.variableName("apiKey") == "API_KEY")
        #expect(SecretRewrite.variableName("1password") == "_1PASSWORD")
        #expect(SecretRewrite.exampleEnv("# vars\nPORT=\n", adding: ["PORT", "API_KEY", "API_KEY"]) == "# vars\nPORT=\nAPI_KEY=\n")
        #expect(SecretRewrite.exampleEnv("PORT=", adding: ["PORT"]) == nil)
    }

    @Test func optionsKeepFindingIdsThroughJSON() throws {
        let id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
        let o = FixOptions(envNames: [id: "MAIL_KEY"], envExample: "config/.env.example")
        #expect(try JSON.decode(FixOptions.self, from: JSON.encode(o)) == o)
    }

    @Test func redactionRemovesEveryValueAndKeyBodies() {
        let patch =
            "-TOKEN = \"abcdefghij\"\n+TOKEN = os.environ[\"TOKEN\"]\n"
            + "------BEGIN RSA PRIVATE KEY-----\n-MIIEverysecret\n------END RSA PRIVATE KEY-----\n"
        let out = RepoFix.redact(patch, [("abcdefghij", "abcd…(10 chars)")])
        #expect(!out.contains("abcdefghij") && !out.contains("MIIEverysecret") && out.contains("[redacted abcd…(10 chars)]"))
    }

    @Test func branchNames() {
        for good in ["vigil/fix-1234abcd", "fix_secrets", "a.b"] { #expect(RepoPush.validBranch(good), "\(good)") }
        for bad in ["", "-x", "a..b", "a b", "a~1", "x.lock", "/a", "a/", "a@{1}", "a:b"] { #expect(!RepoPush.validBranch(bad), "\(bad)") }
    }
}

@Suite struct DependencyBumpTests {
    func target(_ file: String, _ eco: String, _ pkg: String, _ v: String, _ fixed: String?) -> FixTarget {
        FixTarget(
            findingId: "f", checkId: "c", file: file, line: nil, digest: nil, detector: nil, category: nil, inHistoryOnly: false,
            dependency: RepoDependency(package: pkg, version: v, ecosystem: eco, purl: "", fixedVersion: fixed, advisories: [], summary: nil))
    }

    @Test func manifestsAreBumped() throws {
        let dir = NSTemporaryDirectory() + "bump-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/web", withIntermediateDirectories: true)
        try "Requests==2.25.0  # http\nflask==2.3.3\n".write(toFile: dir + "/requirements.txt", atomically: true, encoding: .utf8)
        try #"{"dependencies": {"lodash": "^4.17.20", "lodash-es": "4.17.20"}}"#.write(
            toFile: dir + "/web/package.json", atomically: true, encoding: .utf8)
        try "module x\n\nrequire (\n\tgolang.org/x/net v0.10.0 // indirect\n)\n".write(toFile: dir + "/go.mod", atomically: true, encoding: .utf8)
        #expect(DependencyBump.apply(dir, target("requirements.txt", "PyPI", "requests", "2.25.0", "2.31.0")).outcome == "fixed")
        #expect(try String(contentsOfFile: dir + "/requirements.txt", encoding: .utf8) == "Requests==2.31.0  # http\nflask==2.3.3\n")
        #expect(DependencyBump.apply(dir, target("web/package-lock.json", "npm", "lodash", "4.17.20", "4.17.21")).file == "web/package.json")
        #expect(
            try String(contentsOfFile: dir + "/web/package.json", encoding: .utf8)
                == #"{"dependencies": {"lodash": "^4.17.21", "lodash-es": "4.17.20"}}"#)
        #expect(DependencyBump.apply(dir, target("go.sum", "Go", "golang.org/x/net", "v0.10.0", "0.17.0")).outcome == "fixed")
        #expect(try String(contentsOfFile: dir + "/go.mod", encoding: .utf8).contains("\tgolang.org/x/net v0.17.0 // indirect\n"))
        #expect(DependencyBump.apply(dir, target("Gemfile.lock", "RubyGems", "rack", "2.0.8", "2.0.9.2")).outcome == "manual")
        #expect(DependencyBump.apply(dir, target("requirements.txt", "PyPI", "django", "4.0", nil)).outcome == "manual")
        #expect(DependencyBump.apply(dir, target("requirements.txt", "PyPI", "absent", "1.0", "1.1")).outcome == "manual")
    }
}

@Suite struct ForgeTests {
    @Test func knownForgesAndProjects() {
        let s = ForgeSettings(extra: "git.corp:8443=gitlab@https://git.corp/api/v4, bad-entry, x=svn@y")
        #expect(Forge.identify("https://github.com/acme/app.git", s)?.project == "acme/app")
        #expect(Forge.identify("git@github.com:acme/app.git", s)?.host.kind == "github")
        #expect(Forge.identify("https://gitlab.com/group/sub/app", s)?.project == "group/sub/app")
        #expect(Forge.identify("https://git.corp:8443/team/app.git", s)?.host == ForgeSettings.Host(kind: "gitlab", api: "https://git.corp/api/v4"))
        #expect(Forge.identify("https://git.corp/team/app.git", s) == nil)  // another port: not the named forge
        #expect(Forge.identify("https://github.com/app.git", s) == nil)  // no owner
        #expect(Forge.identify("https://bitbucket.org/a/b.git", s) == nil && s.hosts["x"] == nil)
    }
}
