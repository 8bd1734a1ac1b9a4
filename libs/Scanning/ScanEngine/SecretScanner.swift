import Foundation
import VigilCore

/// Finds values that look like credentials in configuration text. Reports kinds and names, never values.
public enum SecretScanner {
    static let valuePatterns: [(String, String)] = [
        ("aws_access_key_id", "(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
        ("aws_secret_access_key", "(?i)aws_?secret_?access_?key\\s*[=:]\\s*['\"]?[A-Za-z0-9/+=]{40}"),
        ("private_key", "-----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
        ("github_token", "gh[pousr]_[A-Za-z0-9]{36}"),
        ("slack_token", "xox[abprs]-[A-Za-z0-9-]{10,}"),
        ("stripe_secret_key", "sk_live_[A-Za-z0-9]{16,}"),
        ("password_assignment", "(?i)(password|passwd|pwd|secret|api_?key|token)\\s*[=:]\\s*['\"]?[^\\s'\"$]{8,}"),
    ]
    static let compiled: [(String, NSRegularExpression)] = valuePatterns.map { ($0.0, try! NSRegularExpression(pattern: $0.1)) }
    static let secretName = try! NSRegularExpression(pattern: "(?i)(password|passwd|secret|token|api_?key|private_?key|credential|access_?key)")
    /// Values that are references, not secrets (ARNs, SSM/Secrets Manager paths, empty placeholders).
    static let reference = try! NSRegularExpression(pattern: "^(arn:|\\{\\{resolve:|ssm:|/|\\$\\{)")

    /// Kinds of secrets found in free text (user data, scripts).
    public static func kinds(in text: String) -> [String] {
        let range = NSRange(text.startIndex..., in: text)
        return compiled.filter { $0.1.firstMatch(in: text, range: range) != nil }.map(\.0)
    }

    /// Names of environment variables whose value looks like a secret.
    public static func secretVariables(_ env: [String: String]) -> [String] {
        env.compactMap { name, value -> String? in
            let v = value.trimmingCharacters(in: .whitespaces)
            if v.isEmpty || reference.firstMatch(in: v, range: NSRange(v.startIndex..., in: v)) != nil { return nil }
            if !kinds(in: v).isEmpty { return name }
            let nameLooksSecret = secretName.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
            return nameLooksSecret && v.count >= 8 ? name : nil
        }.sorted()
    }
}
