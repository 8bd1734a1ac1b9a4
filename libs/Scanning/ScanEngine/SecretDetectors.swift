import Foundation
import VigilCrypto

/// A credential found in text: which detector, where, and a preview that never holds the whole value.
public struct SecretMatch: Sendable, Equatable, Codable {
    public var detector: String
    /// `cloud_key`, `payment_key`, `private_key`, `vcs_token`, `saas_token`, `jwt`, `connection_url`, `generic`.
    public var category: String
    public var severity: String
    public var line: Int
    public var preview: String
    /// A keyed digest of the value (when the caller gives a key): the same secret gets the same digest in
    /// every file and commit of one scope, so a finding keeps its identity without the value being kept.
    public var digest: String? = nil
    /// The value itself, only when the caller asks for it (a fix replacing it in a file); never encoded or printed.
    public var value: String? = nil

    enum CodingKeys: String, CodingKey { case detector, category, severity, line, preview, digest }
}

extension SecretMatch: CustomStringConvertible {
    public var description: String { "\(detector) line \(line) \(preview)" }
}

/// The secret detectors shared by every scanner that reads text (web pages and scripts, repository trees
/// and history). Each detector has literal anchors, a pattern, and a validation that throws out what is not
/// a secret: documentation examples (`…EXAMPLE`), placeholders (`changeme`, `<YOUR_KEY>`, `${VAR}`,
/// `{{ x }}`), publishable keys (`pk_live_`), tokens whose built-in checksum does not match (GitHub's CRC32
/// suffix), lines marked as test fixtures (`pragma: allowlist secret`, `gitleaks:allow`, `vigil:allow`,
/// `fake`, `dummy`). One pass of a literal matcher over the bytes finds the anchors; a detector's pattern
/// then runs only on the lines (or, for multi-line secrets, the window) around its anchors. Previews keep
/// the first characters and the length, never the value.
public enum SecretDetectors {
    struct Detector: Sendable {
        var id: String
        var category: String
        var severity: String
        /// Literals (matched case-insensitively) of which one occurs in or next to every match.
        var anchors: [String]
        var pattern: String
        /// The capture group holding the secret (0: the whole match).
        var group: Int = 0
        /// Multi-line secrets: how far before and after an anchor the pattern may reach (0: the anchor's line).
        var before: Int = 0
        var after: Int = 0
        /// Assignments to secret-named keys (only where the caller asks for them: repository files, not web pages).
        var generic: Bool = false
        /// Found by reading `key = value` at the anchor (no pattern); `pattern` documents the same shape.
        var assignment: Bool = false
        var validate: @Sendable (_ value: String, _ match: String) -> Bool = { _, _ in true }
    }

    static func token(
        _ id: String, _ category: String, _ severity: String, _ anchors: [String], _ pattern: String,
        validate: @escaping @Sendable (String, String) -> Bool = { _, _ in true }
    ) -> Detector {
        Detector(id: id, category: category, severity: severity, anchors: anchors, pattern: pattern, group: 1, validate: validate)
    }

    static func privateKey(_ id: String, _ label: String, severity: String = "critical") -> Detector {
        Detector(
            id: id, category: "private_key", severity: severity, anchors: ["-----BEGIN \(label)-----"],
            pattern: "-----BEGIN \(label)-----[\\s\\S]{32,}?-----END \(label)-----", after: 16_384,
            validate: { _, m in !m.contains("...") && !SecretDetectors.isExample(m) })
    }

    static func connectionURL(_ id: String, _ schemes: [String]) -> Detector {
        let alternatives = schemes.map { NSRegularExpression.escapedPattern(for: $0) }.joined(separator: "|")
        return Detector(
            id: id, category: "connection_url", severity: "high", anchors: schemes.map { $0 + "://" },
            pattern: #"(?<![A-Za-z0-9+])((?:"# + alternatives + #")://[^\s:/@'"`]+:([^\s@'"`/]{3,})@[^\s'"`]+)"#, group: 1,
            validate: { url, _ in
                guard let r = url.range(of: "://"), let at = url.range(of: "@", range: r.upperBound..<url.endIndex) else { return false }
                let password = String(url[r.upperBound..<at.lowerBound].split(separator: ":", maxSplits: 1).last ?? "")
                return !isPlaceholder(password) && !password.hasPrefix("$") && !password.hasPrefix("%")
            })
    }

    /// Letters and digits mixed, as random keys are (a guard against words and repeated characters).
    static func looksRandom(_ v: String) -> Bool {
        let hasDigit = v.contains { $0.isNumber }
        let hasUpper = v.contains { $0.isUppercase }
        let hasLower = v.contains { $0.isLowercase }
        return [hasDigit, hasUpper, hasLower].filter { $0 }.count >= 2 && entropy(v) >= 3.0
    }

    static let detectors: [Detector] = [
        // Cloud keys.
        token("aws_access_key_id", "cloud_key", "high", ["AKIA", "ASIA"], #"(?<![A-Z0-9])((?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Z0-9])"#) { v, _ in
            entropy(String(v.dropFirst(4))) >= 3.0
        },
        Detector(
            id: "aws_secret_access_key", category: "cloud_key", severity: "critical", anchors: ["aws", "secret_access_key", "secretaccesskey"],
            pattern: #"(?i)(?:aws.{0,20}?(?:secret|sk)|secret_?access_?key).{0,20}?['"=:\s]\s*['"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"#,
            group: 1, validate: { v, _ in looksRandom(v) }),
        Detector(
            id: "gcp_service_account", category: "cloud_key", severity: "critical", anchors: ["service_account"],
            pattern: #""type"\s*:\s*"service_account"[\s\S]{0,2000}?"private_key"\s*:\s*"(-----BEGIN[^"]{64,})""#, group: 1,
            before: 2048, after: 8192),
        token("google_api_key", "saas_token", "medium", ["AIza"], #"\b(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])"#),
        token("google_oauth_client_secret", "cloud_key", "high", ["GOCSPX-"], #"\b(GOCSPX-[A-Za-z0-9_-]{28})(?![A-Za-z0-9_-])"#),
        token("azure_storage_key", "cloud_key", "critical", ["AccountKey="], #"AccountKey=([A-Za-z0-9+/]{86}==)"#),
        token(
            "azure_ad_client_secret", "cloud_key", "critical", ["Q~"],
            #"(?<![A-Za-z0-9_~.-])([A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])"#, validate: { v, _ in looksRandom(v) }),
        token("azure_sas_token", "cloud_key", "high", ["&sig=", "?sig="], #"[?&]sv=\d{4}-\d{2}-\d{2}[^\s"'<>]*?[?&]sig=([A-Za-z0-9%+/=]{30,})"#),
        token("alibaba_access_key_id", "cloud_key", "high", ["LTAI"], #"\b(LTAI[A-Za-z0-9]{12,20})\b"#, validate: { v, _ in looksRandom(v) }),
        token("digitalocean_token", "cloud_key", "critical", ["dop_v1_", "doo_v1_", "dor_v1_"], #"\b(do[opr]_v1_[a-f0-9]{64})\b"#),
        // Private keys.
        privateKey("private_key_rsa", "RSA PRIVATE KEY"),
        privateKey("private_key_ec", "EC PRIVATE KEY"),
        privateKey("private_key_dsa", "DSA PRIVATE KEY"),
        privateKey("private_key_openssh", "OPENSSH PRIVATE KEY"),
        privateKey("private_key_pkcs8", "PRIVATE KEY"),
        privateKey("private_key_encrypted", "ENCRYPTED PRIVATE KEY", severity: "high"),
        privateKey("pgp_private_key", "PGP PRIVATE KEY BLOCK"),
        Detector(
            id: "putty_private_key", category: "private_key", severity: "critical", anchors: ["PuTTY-User-Key-File-"],
            pattern: #"PuTTY-User-Key-File-[23]: [^\n]+\n[\s\S]{0,6000}?Private-Lines: \d+"#, after: 8192),
        token("age_secret_key", "private_key", "critical", ["AGE-SECRET-KEY-1"], #"\b(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})\b"#),
        // Source control and package registries.
        token("github_token", "vcs_token", "critical", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], #"\b(gh[pousr]_[A-Za-z0-9]{36})\b"#) { v, _ in
            githubChecksumMatches(v)
        },
        token("github_fine_grained_pat", "vcs_token", "critical", ["github_pat_"], #"\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b"#),
        token("gitlab_token", "vcs_token", "critical", ["glpat-"], #"\b(glpat-[A-Za-z0-9_-]{20,})(?![A-Za-z0-9_-])"#),
        token("gitlab_pipeline_trigger_token", "vcs_token", "high", ["glptt-"], #"\b(glptt-[0-9a-f]{40})\b"#),
        token("gitlab_runner_token", "vcs_token", "high", ["glrt-"], #"\b(glrt-[A-Za-z0-9_-]{20,})(?![A-Za-z0-9_-])"#),
        token("gitlab_deploy_token", "vcs_token", "high", ["gldt-"], #"\b(gldt-[A-Za-z0-9_-]{20,})(?![A-Za-z0-9_-])"#),
        token("atlassian_api_token", "vcs_token", "high", ["ATATT3"], #"\b(ATATT3[A-Za-z0-9_=-]{180,})"#),
        token("npm_token", "vcs_token", "high", ["npm_"], #"\b(npm_[A-Za-z0-9]{36})\b"#) { v, _ in looksRandom(String(v.dropFirst(4))) },
        token("pypi_token", "vcs_token", "high", ["pypi-AgEIcHlwaS5vcmc"], #"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})"#),
        token("rubygems_api_key", "vcs_token", "high", ["rubygems_"], #"\b(rubygems_[0-9a-f]{48})\b"#),
        token("docker_hub_token", "vcs_token", "high", ["dckr_pat_"], #"\b(dckr_pat_[A-Za-z0-9_-]{27})(?![A-Za-z0-9_-])"#),
        token("hashicorp_vault_token", "cloud_key", "critical", ["hvs.", "hvb."], #"\b(hv[sb]\.[A-Za-z0-9_-]{24,})(?![A-Za-z0-9_-])"#) { v, _ in
            looksRandom(String(v.dropFirst(4)))
        },
        token("terraform_cloud_token", "cloud_key", "critical", [".atlasv1."], #"\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})"#),
        token("pulumi_token", "cloud_key", "high", ["pul-"], #"\b(pul-[a-f0-9]{40})\b"#),
        token("doppler_token", "saas_token", "high", ["dp.st.", "dp.pt.", "dp.ct.", "dp.sa."], #"\b(dp\.(?:st|pt|ct|sa)\.[A-Za-z0-9_.-]{40,})"#),
        token(
            "planetscale_token", "saas_token", "high", ["pscale_tkn_", "pscale_pw_", "pscale_oauth_"],
            #"\b(pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,64})"#),
        token("flyio_token", "cloud_key", "high", ["fo1_"], #"\b(fo1_[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])"#),
        // Chat, payments and SaaS APIs.
        token("slack_bot_token", "saas_token", "high", ["xoxb-"], #"\b(xoxb-[0-9]{8,}-[0-9]{8,}-[A-Za-z0-9]{20,})"#),
        token("slack_user_token", "saas_token", "high", ["xoxp-"], #"\b(xoxp-[0-9]{8,}-[0-9]{8,}-[0-9]{8,}-[a-f0-9]{24,})"#),
        token("slack_app_token", "saas_token", "high", ["xapp-"], #"\b(xapp-\d-[A-Z0-9]{8,}-\d{8,}-[a-z0-9]{32,})"#),
        token("slack_legacy_token", "saas_token", "high", ["xoxa-", "xoxr-", "xoxs-"], #"\b(xox[ars]-[0-9]{8,}-[0-9A-Za-z-]{8,})"#),
        token(
            "slack_webhook", "saas_token", "medium", ["hooks.slack.com/services/"],
            #"(https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,})"#),
        token(
            "discord_webhook", "saas_token", "medium", ["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"],
            #"(https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d{17,20}/[A-Za-z0-9_-]{60,70})"#),
        token("telegram_bot_token", "saas_token", "high", [":AA"], #"(?<![0-9])([0-9]{8,10}:AA[0-9A-Za-z_-]{33})(?![0-9A-Za-z_-])"#),
        token("stripe_secret_key", "payment_key", "critical", ["sk_live_"], #"\b(sk_live_[A-Za-z0-9]{20,})\b"#),
        token("stripe_restricted_key", "payment_key", "critical", ["rk_live_"], #"\b(rk_live_[A-Za-z0-9]{20,})\b"#),
        token("stripe_webhook_secret", "payment_key", "high", ["whsec_"], #"\b(whsec_[A-Za-z0-9+/]{32,})"#) { v, _ in
            looksRandom(String(v.dropFirst(6)))
        },
        token("square_access_token", "payment_key", "critical", ["sq0atp-"], #"\b(sq0atp-[0-9A-Za-z_-]{22})(?![0-9A-Za-z_-])"#),
        token("square_oauth_secret", "payment_key", "critical", ["sq0csp-"], #"\b(sq0csp-[0-9A-Za-z_-]{43})(?![0-9A-Za-z_-])"#),
        token("shopify_token", "payment_key", "high", ["shpat_", "shpca_", "shppa_", "shpss_"], #"\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b"#),
        token("sendgrid_api_key", "saas_token", "high", ["SG."], #"\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])"#),
        token(
            "twilio_api_key", "saas_token", "high", (Array("0123456789abcdef")).map { "SK\($0)" }, #"\b(SK[0-9a-f]{32})\b"#,
            validate: { v, _ in entropy(v) >= 3.0 }),
        Detector(
            id: "twilio_auth_token", category: "saas_token", severity: "high", anchors: ["twilio"],
            pattern: #"(?i)twilio.{0,30}?(?:auth|token|secret).{0,20}?['"=:\s]\s*['"]?([0-9a-f]{32})\b"#, group: 1,
            validate: { v, _ in entropy(v) >= 3.0 }),
        token("mailgun_api_key", "saas_token", "high", ["key-"], #"\b(key-[0-9a-z]{32})\b"#) { v, _ in looksRandom(String(v.dropFirst(4))) },
        token("mailchimp_api_key", "saas_token", "high", ["-us"], #"\b([0-9a-f]{32}-us[0-9]{1,2})\b"#) { v, _ in entropy(String(v.prefix(32))) >= 3.0
        },
        token(
            "openai_api_key", "saas_token", "critical", ["sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ"],
            #"\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})(?![A-Za-z0-9_-])"#),
        token("anthropic_api_key", "saas_token", "critical", ["sk-ant-"], #"\b(sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,})"#),
        token("huggingface_token", "saas_token", "high", ["hf_"], #"\b(hf_[A-Za-z]{34})\b"#) { v, _ in looksRandom(String(v.dropFirst(3))) },
        token("new_relic_api_key", "saas_token", "high", ["NRAK-"], #"\b(NRAK-[A-Z0-9]{27})\b"#),
        token("sentry_token", "saas_token", "high", ["sntrys_", "sntryu_"], #"\b(sntrys_[A-Za-z0-9+/=_-]{60,}|sntryu_[a-f0-9]{64})"#),
        token("grafana_token", "saas_token", "high", ["glc_", "glsa_"], #"\b(glc_[A-Za-z0-9+/]{32,}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})"#),
        token("linear_api_key", "saas_token", "high", ["lin_api_"], #"\b(lin_api_[A-Za-z0-9]{40})\b"#),
        token("postman_api_key", "saas_token", "high", ["PMAK-"], #"\b(PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b"#),
        token("databricks_token", "cloud_key", "high", ["dapi"], #"\b(dapi[a-f0-9]{32}(?:-\d)?)\b"#) { v, _ in entropy(v) >= 3.0 },
        token(
            "privileged_jwt", "jwt", "high", ["eyJ"], #"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})"#,
            validate: { v, _ in jwtIsPrivileged(v) }),
        // Connection URLs with a password in them.
        connectionURL("postgres_url_password", ["postgres", "postgresql"]),
        connectionURL("mysql_url_password", ["mysql", "mysql2", "mariadb"]),
        connectionURL("mongodb_url_password", ["mongodb", "mongodb+srv"]),
        connectionURL("redis_url_password", ["redis", "rediss"]),
        connectionURL("amqp_url_password", ["amqp", "amqps"]),
        // Any high-entropy value assigned to a secret-named key (.env, YAML, properties, INI, TOML, code).
        Detector(
            id: "generic_secret", category: "generic", severity: "medium",
            anchors: [
                "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "api-key", "access_key", "accesskey", "private_key",
                "credential", "auth_key",
            ],
            pattern:
                #"(?i)(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api_?key|api-key|access_?key|private_?key|"#
                + #"credentials?|auth_?key)[A-Za-z0-9_.-]*)["']?\s*(?::=|=>|=|:)\s*[@]?["'`]?([^\s"'`;,]{8,200})"#,
            group: 2, generic: true, assignment: true, validate: genericSecret),
        Detector(
            id: "generic_secret", category: "generic", severity: "medium", anchors: ["ENV ", "ARG "],
            pattern:
                #"(?im)^\s*(?:ENV|ARG)\s+([A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)"#
                + #"[A-Za-z0-9_]*)\s+["']?([^\s"'=]{8,200})"#,
            group: 2, generic: true, validate: genericSecret),
    ]

    static let compiled: [NSRegularExpression] = detectors.map { try! NSRegularExpression(pattern: $0.pattern) }

    /// Every anchor once; `anchorDetectors[i]` lists the detectors anchor `i` belongs to.
    static let anchorIndex: (anchors: [String], detectors: [[Int]]) = {
        var anchors: [String] = []
        var owners: [[Int]] = []
        var position: [String: Int] = [:]
        for (d, detector) in detectors.enumerated() {
            for a in detector.anchors {
                let key = a.lowercased()
                if let i = position[key] {
                    if !owners[i].contains(d) { owners[i].append(d) }
                } else {
                    position[key] = anchors.count
                    anchors.append(key)
                    owners.append([d])
                }
            }
        }
        return (anchors, owners)
    }()
    static let prefilter = LiteralPrefilter(anchorIndex.anchors)

    /// The detectors' ids (documented and counted by the capabilities route).
    public static var ids: [String] {
        var seen: Set<String> = []
        return detectors.map(\.id).filter { seen.insert($0).inserted }
    }

    /// Every secret in `text` (at most `limit`), each value once.
    public static func scan(
        _ text: String, limit: Int = 50, generic: Bool = false, digestKey: [UInt8]? = nil, keepValues: Bool = false
    ) -> [SecretMatch] {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer {
            scan(UnsafeBufferPointer($0), limit: limit, generic: generic, digestKey: digestKey, keepValues: keepValues)
        }
    }

    /// Every secret in UTF-8 `bytes` (at most `limit`), each value once. `generic` adds high-entropy values
    /// assigned to secret-named keys (for configuration and code; web pages leave it off).
    public static func scan(
        _ bytes: UnsafeBufferPointer<UInt8>, limit: Int = 50, generic: Bool = false, digestKey: [UInt8]? = nil, keepValues: Bool = false
    ) -> [SecretMatch] {
        // Anchor hits per detector (bounded: a file of a million `eyJ`s costs no more than ten thousand windows).
        var hits: [[Int]] = Array(repeating: [], count: detectors.count)
        var any = false
        let owners = anchorIndex.detectors
        prefilter.scan(bytes) { anchor, start in
            for d in owners[anchor] where hits[d].count < 10_000 && (generic || !detectors[d].generic) {
                hits[d].append(start)
                any = true
            }
        }
        guard any else { return [] }
        let newlines = Lines(bytes)
        var out: [SecretMatch] = []
        var seen: Set<String> = []
        /// Records a candidate; false once the limit is reached.
        func record(_ detector: Detector, _ value: String, line: Int, context: NSString, at location: Int) -> Bool {
            guard !markedNotSecret(context, at: location) else { return true }
            seen.insert(value)
            let digest = digestKey.map { Sodium.hex(Sodium.hmacSHA256(key: $0, message: Array(value.utf8))).prefix(32) }.map(String.init)
            out.append(
                SecretMatch(
                    detector: detector.id, category: detector.category, severity: detector.severity, line: line, preview: preview(value),
                    digest: digest, value: keepValues ? value : nil))
            return out.count < limit
        }
        for d in detectors.indices where !hits[d].isEmpty {
            let detector = detectors[d]
            if detector.assignment {
                // `key = value` around each anchor, read from the bytes: no pattern runs on the many lines that
                // merely mention a password or a token.
                var keys: Set<Int> = []
                for s in hits[d] {
                    guard let a = assignment(at: s, in: bytes), keys.insert(a.keyStart).inserted else { continue }
                    let value = String(decoding: UnsafeBufferPointer(rebasing: bytes[a.value]), as: UTF8.self)
                    let key = String(decoding: UnsafeBufferPointer(rebasing: bytes[a.keyStart..<a.keyEnd]), as: UTF8.self)
                    guard !seen.contains(value), !isExample(value), genericSecret(value, key + "=") else { continue }
                    let (context, location) = lineContext(bytes, at: a.value.lowerBound)
                    guard record(detector, value, line: newlines.line(of: a.value.lowerBound), context: context, at: location) else { return out }
                }
                continue
            }
            for window in windows(hits[d], detector: detector, bytes: bytes) {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[window]), as: UTF8.self)
                let ns = text as NSString
                for m in compiled[d].matches(in: text, range: NSRange(location: 0, length: ns.length)) {
                    let r = m.range(at: detector.group)
                    guard r.location != NSNotFound else { continue }
                    let value = ns.substring(with: r)
                    let whole = ns.substring(with: m.range)
                    guard !seen.contains(value), !isExample(value), detector.validate(value, whole) else { continue }
                    let lineInWindow = ns.substring(to: r.location).utf8.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
                    guard record(detector, value, line: newlines.line(of: window.lowerBound) + lineInWindow, context: ns, at: r.location) else {
                        return out
                    }
                }
            }
        }
        return out.sorted { ($0.line, $0.detector) < ($1.line, $1.detector) }
    }

    static func isKeyByte(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 || b == 46 || b == 45
    }

    /// The key around an anchor and the value assigned to it: `key = v`, `key: v`, `key := v`, `key => v`,
    /// `"key": "v"` (the value quoted or up to a space, quote, `;` or `,`; 8 to 200 bytes). Comparisons
    /// (`==`, `=~`) and scopes (`::`) are not assignments.
    static func assignment(at anchor: Int, in b: UnsafeBufferPointer<UInt8>) -> (keyStart: Int, keyEnd: Int, value: Range<Int>)? {
        var keyStart = anchor
        while keyStart > 0 && isKeyByte(b[keyStart - 1]) { keyStart -= 1 }
        var p = anchor
        while p < b.count && isKeyByte(b[p]) { p += 1 }
        let keyEnd = p
        if p < b.count && (b[p] == 34 || b[p] == 39) { p += 1 }
        while p < b.count && (b[p] == 32 || b[p] == 9) { p += 1 }
        guard p < b.count else { return nil }
        if b[p] == 58 {  // ':' or ':='
            p += 1
            if p < b.count && b[p] == 58 { return nil }
            if p < b.count && b[p] == 61 { p += 1 }
        } else if b[p] == 61 {  // '=' or '=>'
            p += 1
            if p < b.count && (b[p] == 61 || b[p] == 126) { return nil }
            if p < b.count && b[p] == 62 { p += 1 }
        } else {
            return nil
        }
        while p < b.count && (b[p] == 32 || b[p] == 9) { p += 1 }
        if p < b.count && b[p] == 64 { p += 1 }  // '@' (Ruby/PHP attributes)
        var quote: UInt8? = nil
        if p < b.count && (b[p] == 34 || b[p] == 39 || b[p] == 96) {
            quote = b[p]
            p += 1
        }
        let start = p
        while p < b.count && p - start <= 200 {
            let c = b[p]
            if c == 10 || c == 13 { break }
            if let quote { if c == quote { break } } else if c == 32 || c == 9 || c == 34 || c == 39 || c == 96 || c == 59 || c == 44 { break }
            p += 1
        }
        guard (8...200).contains(p - start) else { return nil }
        return (keyStart, keyEnd, start..<p)
    }

    /// The line holding `offset` and the one above it, as text, with `offset`'s place in it (for the markers).
    static func lineContext(_ b: UnsafeBufferPointer<UInt8>, at offset: Int) -> (NSString, Int) {
        var lo = offset
        var lines = 0
        while lo > 0 && offset - lo < 4096 {
            if b[lo - 1] == 10 {
                lines += 1
                if lines == 2 { break }
            }
            lo -= 1
        }
        var hi = offset
        while hi < b.count && b[hi] != 10 && hi - offset < 4096 { hi += 1 }
        let before = String(decoding: UnsafeBufferPointer(rebasing: b[lo..<offset]), as: UTF8.self)
        let after = String(decoding: UnsafeBufferPointer(rebasing: b[offset..<hi]), as: UTF8.self)
        return ((before + after) as NSString, (before as NSString).length)
    }

    /// The byte ranges a detector's pattern runs on: each anchor's line (or its multi-line window), merged.
    static func windows(_ starts: [Int], detector: Detector, bytes: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for s in starts {
            var lo: Int
            var hi: Int
            if detector.before > 0 || detector.after > 0 {
                lo = max(0, s - detector.before)
                hi = min(bytes.count, s + detector.after)
                // Start on a line boundary so line numbers and anchored patterns stay right.
                while lo > 0 && bytes[lo - 1] != 10 { lo -= 1 }
            } else {
                lo = s
                // The anchor's line and the one above it (where a fixture's marker comment may sit).
                var steps = 0
                var lines = 0
                while lo > 0 && steps < 4096 {
                    if bytes[lo - 1] == 10 {
                        lines += 1
                        if lines == 2 { break }
                    }
                    lo -= 1
                    steps += 1
                }
                hi = s
                steps = 0
                while hi < bytes.count && bytes[hi] != 10 && steps < 4096 {
                    hi += 1
                    steps += 1
                }
            }
            if let last = out.last, lo <= last.upperBound {
                out[out.count - 1] = last.lowerBound..<max(last.upperBound, hi)
            } else {
                out.append(lo..<hi)
            }
        }
        return out
    }

    /// Line numbers of byte offsets (newline positions found once, on the first question).
    final class Lines {
        let offsets: [Int]
        init(_ bytes: UnsafeBufferPointer<UInt8>) {
            var o: [Int] = []
            for i in 0..<bytes.count where bytes[i] == 10 { o.append(i) }
            offsets = o
        }
        /// 1-based line of `offset`: one more than the newlines before it.
        func line(of offset: Int) -> Int {
            var lo = 0
            var hi = offsets.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if offsets[mid] < offset { lo = mid + 1 } else { hi = mid }
            }
            return lo + 1
        }
    }

    static let notSecretMarkers = ["pragma: allowlist secret", "gitleaks:allow", "vigil:allow", "nosecret", "not a secret", "not-a-secret"]
    static let fixtureWords = try! NSRegularExpression(pattern: #"(?i)(?<![A-Za-z])(fake|dummy|fixture|mock)(?![A-Za-z])"#)

    /// A line (or the line above it) that says its value is not a secret: allowlist pragmas, or a test
    /// fixture's own words (fake, dummy, fixture, mock).
    static func markedNotSecret(_ text: NSString, at location: Int) -> Bool {
        let line = text.lineRange(for: NSRange(location: location, length: 0))
        var scope = line
        if line.location > 0 {
            let above = text.lineRange(for: NSRange(location: line.location - 1, length: 0))
            scope = NSRange(location: above.location, length: line.location + line.length - above.location)
        }
        let s = text.substring(with: scope).lowercased()
        if notSecretMarkers.contains(where: { s.contains($0) }) { return true }
        return fixtureWords.firstMatch(in: s, range: NSRange(location: 0, length: (s as NSString).length)) != nil
    }

    /// Shannon entropy in bits per character.
    public static func entropy(_ s: String) -> Double {
        var counts: [Character: Int] = [:]
        for c in s { counts[c, default: 0] += 1 }
        let n = Double(s.count)
        return counts.values.reduce(0) { acc, c in
            let p = Double(c) / n
            return acc - p * log2(p)
        }
    }

    static let uuid = try! NSRegularExpression(pattern: #"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"#)
    static let identifier = try! NSRegularExpression(
        pattern: #"^(?:[A-Za-z_$][A-Za-z0-9_$]*\.)+[A-Za-z_$][A-Za-z0-9_$]*$|^[A-Z][A-Z0-9_]*$|^[a-z]+(?:_[a-z]+)+$"#)
    static let keySuffixes = [
        "url", "uri", "path", "file", "name", "field", "len", "length", "type", "policy", "endpoint", "header", "prefix", "regex", "pattern",
        "id", "count", "expiry", "expires", "ttl", "timeout", "format", "label", "placeholder", "hint", "min", "max", "size", "hash", "digest",
    ]

    /// A value assigned to a secret-named key is a secret when it is long, random-looking, and not a
    /// reference, an identifier, a path, a URL, a UUID or a placeholder.
    static func genericSecret(_ value: String, _ match: String) -> Bool {
        let key = match.prefix { !["=", ":", " ", "\t", "\"", "'"].contains($0) }.lowercased()
        let lastWord = key.split(whereSeparator: { "_-.".contains($0) }).last.map(String.init) ?? key
        if keySuffixes.contains(lastWord) || keySuffixes.contains(where: { key.hasSuffix($0) && key.count > $0.count && lastWord != key }) {
            return false
        }
        let v = value.trimmingCharacters(in: CharacterSet(charactersIn: "\"'`"))
        guard v.count >= 10, !isPlaceholder(v) else { return false }
        if v.contains(where: { "()[]{}<>$%\\".contains($0) }) { return false }
        let lower = v.lowercased()
        if ["http://", "https://", "file://", "/", "./", "../", "~/"].contains(where: { lower.hasPrefix($0) }) { return false }
        if [".pem", ".key", ".json", ".txt", ".crt", ".p12", ".yaml", ".yml", ".env"].contains(where: { lower.hasSuffix($0) }) { return false }
        if ["true", "false", "null", "none", "undefined"].contains(lower) { return false }
        let range = NSRange(location: 0, length: (v as NSString).length)
        if uuid.firstMatch(in: v, range: range) != nil || identifier.firstMatch(in: v, range: range) != nil { return false }
        let classes = [
            v.contains { $0.isLowercase }, v.contains { $0.isUppercase }, v.contains { $0.isNumber }, v.contains { !$0.isLetter && !$0.isNumber },
        ]
        return classes.filter { $0 }.count >= 2 && entropy(v) >= 3.0
    }

    /// The first characters and the length: enough to find it, never enough to use it.
    public static func preview(_ value: String) -> String {
        let keep = value.count >= 24 ? 8 : 4
        return "\(value.prefix(keep))…(\(value.count) chars)"
    }

    /// Documentation examples and obvious fakes.
    static func isExample(_ v: String) -> Bool {
        let u = v.uppercased()
        return u.contains("EXAMPLE") || u.contains("XXXXXXXX") || u.contains("DUMMY") || u.contains("PLACEHOLDER") || u.contains("SAMPLE")
            || u.contains("YOUR_") || u.contains("TEST_KEY") || Set(v.dropFirst(min(8, v.count / 2))).count <= 2
    }

    /// Values that stand for a secret rather than being one.
    public static func isPlaceholder(_ v: String) -> Bool {
        let t = v.trimmingCharacters(in: .whitespaces).lowercased()
        if t.isEmpty || t.hasPrefix("${") || t.hasPrefix("{{") || t.hasPrefix("<") || t.hasPrefix("%") || t.hasPrefix("$") { return true }
        return ["changeme", "change_me", "password", "secret", "example", "placeholder", "xxx", "****", "redacted", "none", "null", "todo"]
            .contains { t == $0 || t.hasPrefix($0) && t.count <= $0.count + 3 }
    }

    /// GitHub's classic tokens end in the base62 CRC32 of the rest: a string that fails it is not a token.
    static func githubChecksumMatches(_ token: String) -> Bool {
        let chars = Array(token)
        guard chars.count == 40 else { return false }
        let body = String(chars[4..<34])
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var n = UInt64(crc32(Array(body.utf8)))
        var encoded: [Character] = []
        while n > 0 {
            encoded.insert(alphabet[Int(n % 62)], at: 0)
            n /= 62
        }
        while encoded.count < 6 { encoded.insert("0", at: 0) }
        return String(encoded) == String(chars[34...])
    }

    static let crcTable: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// A JWT whose claims grant more than a public client should hold (`role: service_role`/`admin`,
    /// `admin: true`, scopes with admin or write-all); anonymous and user tokens are left alone.
    static func jwtIsPrivileged(_ token: String) -> Bool {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return false }
        var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let claims = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        let role = (claims["role"] as? String ?? "").lowercased()
        if ["service_role", "admin", "superuser", "root", "owner"].contains(role) { return true }
        if claims["admin"] as? Bool == true || claims["is_admin"] as? Bool == true { return true }
        let scope = ((claims["scope"] as? String) ?? (claims["scp"] as? [String])?.joined(separator: " ") ?? "").lowercased()
        return scope.split(separator: " ").contains { $0 == "admin" || $0.hasSuffix(":admin") || $0 == "write:all" }
    }
}
