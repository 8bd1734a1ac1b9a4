import Foundation
import VigilCore

/// base64url without padding (RFC 4648 §5).
public enum Base64URL {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ s: String) -> [UInt8]? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !t.contains("="), !t.contains("\n") else { return nil }
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).map { Array($0) }
    }
}

/// Opaque secrets handed to users (API keys, refresh, reset, verification and invitation tokens):
/// a prefix plus 43 base64url characters (32 random bytes), stored only as a SHA-256 hash.
public enum SecretToken {
    public static let apiKeyPrefix = "vgl_"

    public static func generate(prefix: String) -> String {
        prefix + Base64URL.encode(Sodium.randomBytes(32))
    }

    /// True when `s` has the exact shape `<prefix><43 base64url chars>`.
    public static func isWellFormed(_ s: String, prefix: String) -> Bool {
        guard s.hasPrefix(prefix) else { return false }
        let body = s.dropFirst(prefix.count)
        return body.count == 43 && body.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// The at-rest form. Tokens carry 256 bits of entropy, so a fast hash is sufficient.
    public static func hash(_ token: String) -> String { Sodium.sha256Hex(token) }

    /// What lists may show: the prefix and the first characters.
    public static func displayPrefix(_ token: String, prefix: String) -> String {
        String(token.prefix(prefix.count + 8))
    }
}

/// Claims of a Vigil access token.
public struct AccessClaims: Codable, Sendable, Equatable {
    /// User id.
    public var sub: String
    /// Issued-at and expiry, seconds since the epoch.
    public var iat: Int
    public var exp: Int
    /// Token id.
    public var jti: String
    public var iss: String
    /// Default workspace id for this session.
    public var tid: String?

    public init(sub: String, iat: Int, exp: Int, jti: String, iss: String = "vigil-identity", tid: String? = nil) {
        self.sub = sub
        self.iat = iat
        self.exp = exp
        self.jti = jti
        self.iss = iss
        self.tid = tid
    }
}

/// Compact JWS with EdDSA (Ed25519), as RFC 8037 describes.
public enum JWT {
    static let header = Base64URL.encode(Array(#"{"alg":"EdDSA","typ":"JWT"}"#.utf8))

    public static func sign(_ claims: AccessClaims, key: Sodium.SigningKey) throws -> String {
        let payload = Base64URL.encode(Array(try JSONEncoder().encode(claims)))
        let input = "\(header).\(payload)"
        return "\(input).\(Base64URL.encode(key.sign(Array(input.utf8))))"
    }

    /// Verifies signature, algorithm and expiry; returns the claims or nil.
    public static func verify(_ token: String, publicKey: [UInt8], now: Date = Date()) -> AccessClaims? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let sig = Base64URL.decode(String(parts[2])),
            let headerBytes = Base64URL.decode(String(parts[0])),
            let h = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
            h["alg"] as? String == "EdDSA"
        else { return nil }
        let input = Array("\(parts[0]).\(parts[1])".utf8)
        guard Sodium.verify(signature: sig, message: input, publicKey: publicKey),
            let payload = Base64URL.decode(String(parts[1])),
            let claims = try? JSONDecoder().decode(AccessClaims.self, from: Data(payload)),
            claims.exp > Int(now.timeIntervalSince1970)
        else { return nil }
        return claims
    }

    /// True when the string looks like a JWT (three dot-separated parts), so the gateway can tell
    /// JWTs and API keys apart.
    public static func looksLikeJWT(_ s: String) -> Bool { s.split(separator: ".").count == 3 }
}

extension ConfigReader {
    /// A 32-byte key seed given as base64url under `key`; when unset, a random one with
    /// `ephemeral = true` so the caller can warn that what it seals will not survive a restart.
    public func seed(_ key: String) throws -> (bytes: [UInt8], ephemeral: Bool) {
        guard let s = optional(key) else { return (Sodium.randomBytes(32), true) }
        guard let b = Base64URL.decode(s), b.count == 32 else { throw ServiceError.internal("\(key) must be 32 bytes in base64url") }
        return (b, false)
    }
}
