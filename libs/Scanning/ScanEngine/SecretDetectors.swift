import Foundation

/// A credential found in text: which detector, where, and a preview that never holds the whole value.
public struct SecretMatch: Sendable, Equatable, Codable {
    public var detector: String
    /// `cloud_key`, `payment_key`, `private_key`, `vcs_token`, `saas_token`, `jwt`, `connection_url`.
    public var category: String
    public var severity: String
    public var line: Int
    public var preview: String
}

/// The secret detectors shared by every scanner that reads text (web pages and scripts now,
/// repositories later). Each detector is a pattern plus a validation that throws out what is not a
/// secret: documentation examples (`…EXAMPLE`), placeholders (`changeme`, `<YOUR_KEY>`, `${VAR}`,
/// `{{ x }}`), publishable keys (`pk_live_`), tokens whose built-in checksum does not match (GitHub's
/// CRC32 suffix). Previews keep the first characters and the length, never the value.
public enum SecretDetectors {
    struct Detector: Sendable {
        var id: String
        var category: String
        var severity: String
        var pattern: String
        /// The capture group holding the secret (0: the whole match).
        var group: Int = 0
        var validate: @Sendable (String) -> Bool = { _ in true }
    }

    static let detectors: [Detector] = [
        Detector(
            id: "aws_access_key_id", category: "cloud_key", severity: "high", pattern: #"(?<![A-Z0-9])((?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Z0-9])"#,
            group: 1),
        Detector(
            id: "aws_secret_access_key", category: "cloud_key", severity: "critical",
            pattern: #"(?i)aws.{0,20}?(?:secret|sk).{0,20}?['"=:\s]\s*['"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"#, group: 1),
        Detector(
            id: "gcp_service_account", category: "cloud_key", severity: "critical",
            pattern: #""type"\s*:\s*"service_account"[\s\S]{0,2000}?"private_key"\s*:\s*"-----BEGIN"#),
        Detector(
            id: "azure_storage_key", category: "cloud_key", severity: "critical", pattern: #"AccountKey=([A-Za-z0-9+/]{86}==)"#, group: 1),
        Detector(
            id: "private_key", category: "private_key", severity: "critical",
            pattern: #"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----[\s\S]{32,}?-----END"#),
        Detector(
            id: "github_token", category: "vcs_token", severity: "critical", pattern: #"\b(gh[pousr]_[A-Za-z0-9]{36})\b"#, group: 1,
            validate: githubChecksumMatches),
        Detector(
            id: "github_fine_grained_pat", category: "vcs_token", severity: "critical", pattern: #"\b(github_pat_[A-Za-z0-9_]{82})\b"#, group: 1),
        Detector(id: "gitlab_token", category: "vcs_token", severity: "critical", pattern: #"\b(glpat-[A-Za-z0-9_-]{20})\b"#, group: 1),
        Detector(id: "slack_token", category: "saas_token", severity: "high", pattern: #"\b(xox[baprs]-[0-9]{8,}-[0-9A-Za-z-]{8,})"#, group: 1),
        Detector(
            id: "slack_webhook", category: "saas_token", severity: "medium",
            pattern: #"(https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,})"#, group: 1),
        Detector(
            id: "stripe_secret_key", category: "payment_key", severity: "critical", pattern: #"\b((?:sk|rk)_live_[A-Za-z0-9]{20,})\b"#, group: 1),
        Detector(id: "google_api_key", category: "saas_token", severity: "medium", pattern: #"\b(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])"#, group: 1),
        Detector(
            id: "sendgrid_api_key", category: "saas_token", severity: "high", pattern: #"\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})\b"#, group: 1),
        Detector(id: "twilio_api_key", category: "saas_token", severity: "high", pattern: #"\b(SK[0-9a-f]{32})\b"#, group: 1),
        Detector(id: "mailgun_api_key", category: "saas_token", severity: "high", pattern: #"\b(key-[0-9a-z]{32})\b"#, group: 1),
        Detector(id: "mailchimp_api_key", category: "saas_token", severity: "high", pattern: #"\b([0-9a-f]{32}-us[0-9]{1,2})\b"#, group: 1),
        Detector(id: "npm_token", category: "vcs_token", severity: "high", pattern: #"\b(npm_[A-Za-z0-9]{36})\b"#, group: 1),
        Detector(id: "pypi_token", category: "vcs_token", severity: "high", pattern: #"\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})"#, group: 1),
        Detector(
            id: "privileged_jwt", category: "jwt", severity: "high",
            pattern: #"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})"#, group: 1, validate: jwtIsPrivileged),
        Detector(
            id: "connection_url_password", category: "connection_url", severity: "high",
            pattern: #"\b((?:postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|rediss|amqps?)://[^\s:/@'"]+:([^\s@'"/]{3,})@[^\s'"]+)"#, group: 1,
            validate: { url in
                guard let r = url.range(of: "://"), let at = url.range(of: "@", range: r.upperBound..<url.endIndex) else { return false }
                let userinfo = url[r.upperBound..<at.lowerBound]
                return !isPlaceholder(String(userinfo.split(separator: ":", maxSplits: 1).last ?? ""))
            }),
    ]

    static let compiled: [(Detector, NSRegularExpression)] = detectors.map { ($0, try! NSRegularExpression(pattern: $0.pattern)) }

    /// The detectors' ids (documented and counted by the capabilities route).
    public static var ids: [String] { detectors.map(\.id) }

    /// Every secret in `text` (at most `limit`), each value once.
    public static func scan(_ text: String, limit: Int = 50) -> [SecretMatch] {
        let ns = text as NSString
        var out: [SecretMatch] = []
        var seen: Set<String> = []
        var lineStarts: [Int] = [0]
        for (i, u) in text.utf16.enumerated() where u == 10 { lineStarts.append(i + 1) }
        func line(of offset: Int) -> Int {
            var lo = 0
            var hi = lineStarts.count - 1
            while lo < hi {
                let mid = (lo + hi + 1) / 2
                if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
            }
            return lo + 1
        }
        for (d, re) in compiled {
            for m in re.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
                let r = m.range(at: d.group)
                guard r.location != NSNotFound else { continue }
                let value = ns.substring(with: r)
                guard !isExample(value), d.validate(value), seen.insert(value).inserted else { continue }
                out.append(
                    SecretMatch(detector: d.id, category: d.category, severity: d.severity, line: line(of: r.location), preview: preview(value)))
                if out.count >= limit { return out }
            }
        }
        return out
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
