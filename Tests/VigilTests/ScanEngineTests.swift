import AWS
import Foundation
import Net
import Testing
import VigilCore
import VigilTesting

@testable import ScanEngine

/// The rule language, the built-in rules and the collectors (against moto seeded with planted
/// misconfigurations and correctly configured twins).
@Suite(.serialized) struct ScanEngineTests {
    static func resource(_ type: String, _ attributes: [String: JSONValue]) -> Resource {
        Resource(account: "123456789012", region: "us-east-1", service: "test", type: type, id: "arn:test", name: "test", attributes: attributes)
    }

    @Test func builtInRulesCoverTheCatalogue() {
        let rules = BuiltinRules.all
        #expect(rules.count >= 60)
        #expect(Set(rules.map(\.service)).count >= 12)
        #expect(Set(rules.map(\.id)).count == rules.count)
        let frameworks: Set<String> = ["cis_aws_3_0", "cis_debian_12", "pci_dss_4_0", "soc2", "iso27001_2022", "nist_800_53"]
        for r in rules {
            #expect(!r.rationale.isEmpty && !r.remediation.console.isEmpty, "\(r.id)")
            #expect(Set(r.compliance.keys).isSubset(of: frameworks), "\(r.id)")
            if r.category == "cost" {
                #expect(r.savings != nil, "\(r.id) is a cost rule without a saving")
            } else {
                #expect(!r.compliance.isEmpty, "\(r.id) maps to no framework control")
            }
        }
        // Every framework is used, and the CIS benchmark is well covered.
        for f in frameworks { #expect(rules.contains { $0.compliance[f] != nil }, "\(f)") }
        #expect(Set(rules.flatMap { $0.compliance["cis_aws_3_0"] ?? [] }).count >= 20)
        #expect(Set(rules.flatMap { $0.compliance["cis_debian_12"] ?? [] }).count >= 50)
        #expect(rules.filter { $0.provider == "host" }.count >= 50)
    }

    /// Every built-in rule fires on its failing example and passes its correct one.
    @Test func everyRuleFiresAndDoesNotFire() throws {
        for rule in BuiltinRules.all {
            let examples = try #require(rule.examples, "\(rule.id) has no examples")
            let fail = RuleEngine.evaluate(rule, Self.resource(rule.resourceType, examples.fail))
            let pass = RuleEngine.evaluate(rule, Self.resource(rule.resourceType, examples.pass))
            #expect(fail?.status == "FAIL", "\(rule.id) did not fire on its failing example")
            #expect(pass?.status == "PASS", "\(rule.id) fired (or did not apply) on its correct example")
            // Unknown facts never fire a rule.
            #expect(RuleEngine.evaluate(rule, Self.resource(rule.resourceType, [:]))?.status != "FAIL", "\(rule.id) fired without facts")
            // Another resource type is never evaluated.
            #expect(RuleEngine.evaluate(rule, Self.resource("aws.other.thing", examples.fail)) == nil)
        }
    }

    @Test func conditionLanguage() throws {
        func cond(_ json: String) throws -> Condition { try JSON.decode(Condition.self, from: Data(json.utf8)) }
        let r = Self.resource(
            "t",
            [
                "ports": [22, 443], "enc": ["enabled": false], "name2": "prod-db", "rules": [["port": 22, "cidr": "0.0.0.0/0"]],
                "age": 120,
            ])
        let get: (String) -> JSONValue? = { r.value(at: $0) }
        #expect(try cond(#"{"path":"ports","op":"contains","value":22}"#).matches(get))
        #expect(try cond(#"{"path":"ports","op":"contains_any","value":[3389,443]}"#).matches(get))
        #expect(try cond(#"{"path":"enc.enabled","op":"eq","value":false}"#).matches(get))
        #expect(try !cond(#"{"path":"enc.missing","op":"ne","value":true}"#).matches(get))
        #expect(try cond(#"{"path":"enc.missing","op":"not_exists"}"#).matches(get))
        #expect(try cond(#"{"path":"name2","op":"regex","value":"^prod-"}"#).matches(get))
        #expect(try cond(#"{"all":[{"path":"age","op":"gt","value":90},{"not":{"path":"age","op":"gte","value":365}}]}"#).matches(get))
        #expect(
            try cond(
                #"{"path":"rules","op":"any","where":{"all":[{"path":"port","op":"eq","value":22},{"path":"cidr","op":"eq","value":"0.0.0.0/0"}]}}"#
            ).matches(get))
        #expect(try !cond(#"{"path":"rules","op":"any","where":{"path":"port","op":"eq","value":3389}}"#).matches(get))
        #expect(try cond(#"{"path":"tags.env","op":"not_exists"}"#).matches(get))
        // Bad conditions are refused with a reason.
        for bad in [
            #"{"path":"a","op":"bogus","value":1}"#, #"{"path":"a","op":"gt","value":"x"}"#, #"{"path":"a","op":"in","value":1}"#,
            #"{"path":"a","op":"regex","value":"("}"#, #"{"foo":1}"#, #"{"path":"a","op":"eq"}"#,
        ] {
            #expect(throws: (any Error).self, "\(bad)") { try cond(bad) }
        }
    }

    @Test func policyFactsAndSecretDetection() {
        let pub = #"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#
        let conditioned =
            #"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sns:Publish","Resource":"*","#
            + #""Condition":{"StringEquals":{"AWS:SourceOwner":"123456789012"}}}]}"#
        let tls =
            #"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#
        let admin = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D"
        let trust = #"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}"#
        let own = #"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#
        #expect(PolicyFacts(document: pub).allowsPublicPrincipal)
        #expect(!PolicyFacts(document: conditioned).allowsPublicPrincipal)
        #expect(PolicyFacts(document: tls).deniesInsecureTransport && !PolicyFacts(document: tls).allowsPublicPrincipal)
        #expect(PolicyFacts(document: admin).grantsFullAdmin)
        #expect(PolicyFacts(document: trust, ownAccount: "123456789012").crossAccountWithoutExternalId)
        #expect(!PolicyFacts(document: own, ownAccount: "123456789012").crossAccountWithoutExternalId)
        #expect(!PolicyFacts(document: "not json").allowsPublicPrincipal)

        #expect(SecretScanner.kinds(in: "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE").contains("aws_access_key_id"))
        #expect(SecretScanner.kinds(in: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc").contains("private_key"))
        #expect(SecretScanner.kinds(in: "#!/bin/bash\nyum -y update\necho $PASSWORD_FILE").isEmpty)
        #expect(
            SecretScanner.secretVariables([
                "DB_PASSWORD": "Sup3rS3cret!", "STAGE": "prod", "API_TOKEN_ARN": "arn:aws:secretsmanager:x",
                "TOKEN": "", "X": "ghp_0123456789abcdefghij0123456789abcdef",
            ]) == ["DB_PASSWORD", "X"])
    }

    /// Collectors against moto: every planted misconfiguration is found; no rule fails on a twin.
    @Test func collectorsFindPlantedIssuesAndSpareTwins() async throws {
        let port = TestServers.freePort()
        let moto = try TestServers.spawn([
            "/usr/bin/env", "MOTO_IAM_LOAD_MANAGED_POLICIES=true",
            "MOTO_AMIS_PATH=\(TestServers.repoRoot)/scripts/moto-amis.json",
            "moto_server", "-H", "127.0.0.1", "-p", String(port),
        ])
        defer { TestServers.stop(moto) }
        #expect(TestServers.waitForPort(port, timeout: 30), "moto_server did not start")
        let endpoint = "http://127.0.0.1:\(port)"
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("seed-\(port).json").path
        #expect(
            try TestServers.run([
                "/bin/sh", "-c", "python3 \(TestServers.repoRoot)/scripts/aws-seed.py \(endpoint) --regions us-east-1,us-west-2 > \(out)",
            ]) == 0)
        struct Manifest: Decodable {
            var account: String
            var regions: [String]
            var planted: [[String]]
            var twins: [String]
            var accessKeyId: String
            var secretAccessKey: String
        }
        let manifest = try JSON.decode(Manifest.self, from: try Data(contentsOf: URL(fileURLWithPath: out)))

        let client = AWSClient(
            credentials: AWSCredentials(accessKeyId: manifest.accessKeyId, secretAccessKey: manifest.secretAccessKey),
            endpointURL: endpoint, guardrail: SSRFGuard(allowLoopback: true))
        let rules = RuleEngine.index(BuiltinRules.all)
        var results: [ScanResult] = []
        var resources: [Resource] = []
        for collector in AWSCollectors.all {
            for region in collector.global ? ["global"] : manifest.regions {
                let ctx = CollectContext(client: client, account: manifest.account, region: region == "global" ? "us-east-1" : region)
                let part = try await collector.run(context: ctx, rules: rules, tenantId: "t", connectionId: "c")
                results += part.results
                resources += part.resources
            }
        }
        let failing = Set(results.filter { $0.status == "FAIL" }.map { "\($0.ruleId) \($0.resourceName)" })
        let missing = manifest.planted.map { "\($0[0]) \($0[1])" }.filter { !failing.contains($0) }
        #expect(missing.isEmpty, "planted issues not found: \(missing)")
        let uncollected = manifest.twins.filter { t in !resources.contains { $0.name == t } }
        #expect(uncollected.isEmpty, "twins not collected: \(uncollected)")
        let onTwins = results.filter { manifest.twins.contains($0.resourceName) && $0.status == "FAIL" }.map { "\($0.ruleId) \($0.resourceName)" }
        #expect(onTwins.isEmpty, "rules fired on twins: \(onTwins)")
        // Snapshots backing AMIs (ours, or the endpoint's catalogue) are not orphans: only the planted one is.
        let orphans = Set(results.filter { $0.ruleId == "aws.ebs.snapshot_orphaned" && $0.status == "FAIL" }.map(\.resourceName))
        #expect(orphans == Set(manifest.planted.filter { $0[0] == "aws.ebs.snapshot_orphaned" }.map { $0[1] }))
        // Fingerprints are stable and distinct per (rule, resource).
        #expect(Set(results.map(\.fingerprint)).count == results.count)
        let planted = Set(manifest.planted.map { $0[0] })
        print("collectors: \(resources.count) resources, \(results.count) checks, \(failing.count) failures, \(planted.count) rules planted")
    }
}

@Suite struct SecretDetectorTests {
    static func token(_ body: String) -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var n = UInt64(SecretDetectors.crc32(Array(body.utf8)))
        var out = ""
        while n > 0 {
            out = String(alphabet[Int(n % 62)]) + out
            n /= 62
        }
        return "ghp_" + body + String(repeating: "0", count: max(0, 6 - out.count)) + out
    }

    @Test func findsRealSecretsWithRedactedPreviews() {
        let ghp = Self.token("R7x2Kq9LmP4vN8sT3wY6zB1cD5fG0h")
        let text = """
            const id = 'AKIA' + 'QX7Z2M4K9P3LWT6R'; const k = "AKIAQX7Z2M4K9P3LWT6R";
            stripe = "sk_live_51HvZq2KpL8mN3rT6wX9yB4cD7fG0hJ"
            gh = "\(ghp)"
            db = "postgres://app:S3cr3t-pw-91x@db.internal:5432/app"
            """
        let found = SecretDetectors.scan(text)
        #expect(Set(found.map(\.detector)) == ["aws_access_key_id", "stripe_secret_key", "github_token", "connection_url_password"])
        #expect(found.first { $0.detector == "github_token" }?.line == 3)
        for f in found { #expect(!text.contains(f.preview) && f.preview.contains("…")) }
    }

    @Test func decoysAreNotSecrets() {
        let text = """
            AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
            pk_live_51HvZq2KpL8mN3rT6wX9yB4cD7fG0hJ sk_live_XXXXXXXXXXXXXXXXXXXXXXXX
            ghp_R7x2Kq9LmP4vN8sT3wY6zB1cD5fG0h000000
            postgres://app:${DB_PASSWORD}@db/app postgres://app:changeme@db/app
            3f2504e0-4f89-41d3-9a0c-0305e82c3301 sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC
            eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc
            """
        #expect(SecretDetectors.scan(text).isEmpty, "\(SecretDetectors.scan(text))")
    }

    @Test func privilegedJWTsOnly() {
        func jwt(_ claims: String) -> String {
            let b = Data(claims.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_")
            return "eyJhbGciOiJIUzI1NiJ9.\(b).c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc"
        }
        #expect(SecretDetectors.scan(jwt(#"{"role":"service_role"}"#)).map(\.detector) == ["privileged_jwt"])
        #expect(SecretDetectors.scan(jwt(#"{"role":"authenticated","sub":"u1"}"#)).isEmpty)
    }
}
