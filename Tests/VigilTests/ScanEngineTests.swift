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
        #expect(await TestServers.waitForPort(port, timeout: .seconds(30)), "moto_server did not start")
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
        #expect(Set(found.map(\.detector)) == ["aws_access_key_id", "stripe_secret_key", "github_token", "postgres_url_password"])
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

@Suite struct SecretDetectorCatalogueTests {
    /// Deterministic random-looking text over an alphabet (a fixed LCG: the same samples every run).
    static func rnd(_ n: Int, _ alphabet: String = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", seed: UInt64 = 7) -> String {
        let a = Array(alphabet)
        var x = seed &* 6_364_136_223_846_793_005 &+ UInt64(n)
        return String(
            (0..<n).map { _ in
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return a[Int((x >> 33) % UInt64(a.count))]
            })
    }
    static let hex = "0123456789abcdef"
    static let upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

    /// One realistic line per detector (values random, formats real).
    static var samples: [String: String] {
        let pem = (0..<8).map { rnd(64, seed: UInt64($0)) }.joined(separator: "\n")
        func key(_ label: String) -> String { "-----BEGIN \(label)-----\n\(pem)\n-----END \(label)-----" }
        return [
            "aws_access_key_id": "aws_access_key_id = AKIA\(rnd(16, upper))",
            "aws_secret_access_key": "aws_secret_access_key = \(rnd(40))",
            "gcp_service_account":
                #"{"type": "service_account", "project_id": "p", "private_key_id": "1", "#
                + #""private_key": "-----BEGIN PRIVATE KEY-----\n\#(rnd(80))\n-----END PRIVATE KEY-----\n"}"#,
            "google_api_key": "maps = AIza\(rnd(35))",
            "google_oauth_client_secret": "client_secret: GOCSPX-\(rnd(28))",
            "azure_storage_key": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=\(rnd(86))==;EndpointSuffix=core.windows.net",
            "azure_ad_client_secret": "AZURE_CLIENT_SECRET=abc8Q~\(rnd(34))",
            "azure_sas_token": "https://acct.blob.core.windows.net/c?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01&sig=\(rnd(44))%3D",
            "alibaba_access_key_id": "ALIBABA_KEY=LTAI\(rnd(20))",
            "digitalocean_token": "DO_TOKEN=dop_v1_\(rnd(64, hex))",
            "private_key_rsa": key("RSA PRIVATE KEY"),
            "private_key_ec": key("EC PRIVATE KEY"),
            "private_key_dsa": key("DSA PRIVATE KEY"),
            "private_key_openssh": key("OPENSSH PRIVATE KEY"),
            "private_key_pkcs8": key("PRIVATE KEY"),
            "private_key_encrypted": key("ENCRYPTED PRIVATE KEY"),
            "pgp_private_key": key("PGP PRIVATE KEY BLOCK"),
            "putty_private_key":
                "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 2\n\(rnd(64))\n\(rnd(20))\n"
                + "Private-Lines: 1\n\(rnd(44))",
            "age_secret_key": "AGE-SECRET-KEY-1\(rnd(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"))",
            "github_token": "token = \"\(SecretDetectorTests.token(rnd(30)))\"",
            "github_fine_grained_pat": "GH=github_pat_\(rnd(22))_\(rnd(59))",
            "gitlab_token": "GITLAB_TOKEN=glpat-\(rnd(20))",
            "gitlab_pipeline_trigger_token": "trigger: glptt-\(rnd(40, hex))",
            "gitlab_runner_token": "runner: glrt-\(rnd(20))",
            "gitlab_deploy_token": "deploy: gldt-\(rnd(20))",
            "atlassian_api_token": "JIRA=ATATT3\(rnd(186))",
            "npm_token": "//registry.npmjs.org/:_authToken=npm_\(rnd(36))",
            "pypi_token": "password = pypi-AgEIcHlwaS5vcmc\(rnd(70))",
            "rubygems_api_key": ":rubygems_api_key: rubygems_\(rnd(48, hex))",
            "docker_hub_token": "DOCKER_PAT=dckr_pat_\(rnd(27))",
            "hashicorp_vault_token": "VAULT_TOKEN=hvs.\(rnd(90))",
            "terraform_cloud_token": "token = \"\(rnd(14)).atlasv1.\(rnd(67))\"",
            "pulumi_token": "PULUMI_ACCESS_TOKEN=pul-\(rnd(40, hex))",
            "doppler_token": "DOPPLER_TOKEN=dp.st.prd.\(rnd(43))",
            "planetscale_token": "PS=pscale_tkn_\(rnd(43))",
            "flyio_token": "FLY=fo1_\(rnd(43))",
            "slack_bot_token": "SLACK=xoxb-\(rnd(12, "0123456789"))-\(rnd(13, "0123456789"))-\(rnd(24))",
            "slack_user_token": "SLACK=xoxp-\(rnd(12, "0123456789"))-\(rnd(12, "0123456789"))-\(rnd(13, "0123456789"))-\(rnd(32, hex))",
            "slack_app_token": "SLACK_APP=xapp-1-A\(rnd(10, upper))-\(rnd(13, "0123456789"))-\(rnd(64, hex))",
            "slack_legacy_token": "legacy = xoxs-\(rnd(10, "0123456789"))-\(rnd(30))",
            "slack_webhook": "hook: https://hooks.slack.com/services/T\(rnd(8, upper))/B\(rnd(8, upper))/\(rnd(24))",
            "discord_webhook": "https://discord.com/api/webhooks/\(rnd(18, "0123456789"))/\(rnd(68))",
            "telegram_bot_token": "BOT=\(rnd(9, "0123456789")):AA\(rnd(33))",
            "stripe_secret_key": "STRIPE=sk_live_\(rnd(24))",
            "stripe_restricted_key": "STRIPE=rk_live_\(rnd(24))",
            "stripe_webhook_secret": "STRIPE_WEBHOOK=whsec_\(rnd(32))",
            "square_access_token": "SQUARE=sq0atp-\(rnd(22))",
            "square_oauth_secret": "SQUARE_SECRET=sq0csp-\(rnd(43))",
            "shopify_token": "SHOPIFY=shpat_\(rnd(32, hex))",
            "sendgrid_api_key": "SENDGRID=SG.\(rnd(22)).\(rnd(43))",
            "twilio_api_key": "TWILIO_KEY=SK\(rnd(32, hex))",
            "twilio_auth_token": "TWILIO_AUTH_TOKEN=\(rnd(32, hex))",
            "mailgun_api_key": "MAILGUN=key-\(rnd(32, "0123456789abcdefghijklmnopqrstuvwxyz"))",
            "mailchimp_api_key": "MAILCHIMP=\(rnd(32, hex))-us14",
            "openai_api_key": "OPENAI_API_KEY=sk-proj-\(rnd(120))",
            "anthropic_api_key": "ANTHROPIC=sk-ant-api03-\(rnd(93))",
            "huggingface_token": "HF=hf_\(rnd(34, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))",
            "new_relic_api_key": "NEW_RELIC=NRAK-\(rnd(27, upper))",
            "sentry_token": "SENTRY=sntrys_\(rnd(80))",
            "grafana_token": "GRAFANA=glsa_\(rnd(32))_\(rnd(8, hex))",
            "linear_api_key": "LINEAR=lin_api_\(rnd(40))",
            "postman_api_key": "POSTMAN=PMAK-\(rnd(24, hex))-\(rnd(34, hex))",
            "databricks_token": "DATABRICKS=dapi\(rnd(32, hex))",
            "privileged_jwt":
                "SERVICE_ROLE=eyJhbGciOiJIUzI1NiJ9."
                + Data(#"{"role":"service_role","iss":"x"}"#.utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "") + ".\(rnd(43))",
            "postgres_url_password": "DATABASE_URL=postgres://app:\(rnd(16))@db.internal:5432/app",
            "mysql_url_password": "MYSQL=mysql://root:\(rnd(16))@10.0.0.5/app",
            "mongodb_url_password": "MONGO=mongodb+srv://svc:\(rnd(16))@cluster0.ab1cd.mongodb.net/db",
            "redis_url_password": "REDIS=redis://default:\(rnd(16))@cache:6379/0",
            "amqp_url_password": "AMQP=amqp://user:\(rnd(16))@mq:5672/vhost",
            "generic_secret": "db_password = \"\(rnd(20))!\"",
        ]
    }

    @Test func everyDetectorFindsItsFormat() {
        let ids = SecretDetectors.ids
        #expect(ids.count >= 45, "\(ids.count) detectors")
        #expect(Set(ids) == Set(Self.samples.keys), "detectors without a sample: \(Set(ids).subtracting(Self.samples.keys))")
        for (id, sample) in Self.samples.sorted(by: { $0.key < $1.key }) {
            let found = SecretDetectors.scan("line one\n" + sample + "\n", generic: true)
            #expect(found.map(\.detector).contains(id), "\(id) missed in \(sample.prefix(60)): \(found.map(\.detector))")
            #expect(found.first { $0.detector == id }?.line == 2, "\(id) line")
        }
    }

    /// Lines of every "not a secret" kind: documentation examples, publishable keys, placeholders, references,
    /// hashes in lockfiles, UUIDs, fixtures marked as such, checksums that do not match.
    static var decoys: [String] {
        [
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "STRIPE_PUBLISHABLE=pk_live_\(Self.rnd(24))", "password = changeme", "API_KEY=<YOUR_KEY>", "token: ${GITHUB_TOKEN}",
            "password: {{ .Values.db.password }}", "secret = os.environ[\"SECRET\"]", "api_key = process.env.API_KEY",
            "DB_PASSWORD=$DB_PASSWORD", "request_id = 3f2504e0-4f89-41d3-9a0c-0305e82c3301",
            #""integrity": "sha512-\#(Self.rnd(86))==""#, "password_field = \"user_password_input\"", "token_url = https://auth.example.com/token",
            "secret_key = settings.SECRET_KEY", "AWS_SECRET=AKIA\(Self.rnd(16, Self.upper))  # pragma: allowlist secret",
            "# fake key for the unit tests\nstripe = sk_live_\(Self.rnd(24))", "password = \"password123\"",
            "auth_token = \"${{ secrets.TOKEN }}\"", "private_key_path = /etc/ssl/private/server.key",
            "ghp_\(Self.rnd(36))", "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
        ]
    }

    @Test func notSecrets() {
        for d in Self.decoys {
            #expect(
                SecretDetectors.scan(d, generic: true).isEmpty,
                "flagged: \(d.prefix(70)) → \(SecretDetectors.scan(d, generic: true).map(\.detector))"
            )
        }
    }

    @Test func prefilterFindsEveryAnchorCaseInsensitively() {
        let f = LiteralPrefilter(["abc", "bcd", "SK_live_", "c"])
        var hits: [String] = []
        let text = Array("xABCD sk_LIVE_ c".utf8)
        text.withUnsafeBufferPointer { buf in f.scan(buf) { p, start in hits.append("\(p)@\(start)") } }
        #expect(Set(hits) == ["0@1", "1@2", "3@3", "2@6", "3@15"])
    }
}
