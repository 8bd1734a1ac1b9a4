import CSodium
import Foundation
import VigilCore

/// libsodium primitives used across Vigil. All functions are thread-safe.
public enum Sodium {
    private static let initialized: Bool = { sodium_init() >= 0 }()

    static func ready() { precondition(initialized, "libsodium failed to initialize") }

    /// Cryptographically secure random bytes.
    public static func randomBytes(_ n: Int) -> [UInt8] {
        ready()
        var b = [UInt8](repeating: 0, count: n)
        randombytes_buf(&b, n)
        return b
    }

    /// SHA-256 digest.
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_bytes()))
        crypto_hash_sha256(&out, data, UInt64(data.count))
        return out
    }

    public static func sha256Hex(_ s: String) -> String { hex(sha256(Array(s.utf8))) }

    /// HMAC-SHA256 with a key of any length (keys over 64 bytes are hashed, as HMAC specifies).
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        ready()
        var st = crypto_auth_hmacsha256_state()
        crypto_auth_hmacsha256_init(&st, key, key.count)
        crypto_auth_hmacsha256_update(&st, message, UInt64(message.count))
        var out = [UInt8](repeating: 0, count: Int(crypto_auth_hmacsha256_bytes()))
        crypto_auth_hmacsha256_final(&st, &out)
        return out
    }

    /// Constant-time equality of two byte strings (lengths are not secret).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return sodium_memcmp(a, b, a.count) == 0
    }

    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        constantTimeEqual(Array(a.utf8), Array(b.utf8))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Lowercase hex (no Foundation formatting: this runs on every authenticated request).
    public static func hex(_ b: [UInt8]) -> String {
        var out = [UInt8](repeating: 0, count: b.count * 2)
        for (i, v) in b.enumerated() {
            out[2 * i] = hexDigits[Int(v >> 4)]
            out[2 * i + 1] = hexDigits[Int(v & 0x0f)]
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: passwords

    /// Password hashing strength: `interactive` for production logins, `minimum` for fast tests.
    public enum PasswordStrength: Sendable { case interactive, moderate, minimum }

    /// argon2id hash in libsodium's self-describing string format.
    public static func hashPassword(_ password: String, strength: PasswordStrength = .interactive) throws -> String {
        ready()
        let (ops, mem): (UInt64, Int) =
            switch strength {
            case .interactive: (UInt64(crypto_pwhash_opslimit_interactive()), crypto_pwhash_memlimit_interactive())
            case .moderate: (UInt64(crypto_pwhash_opslimit_moderate()), crypto_pwhash_memlimit_moderate())
            case .minimum: (UInt64(crypto_pwhash_opslimit_min()), crypto_pwhash_memlimit_min() * 16)
            }
        var out = [CChar](repeating: 0, count: Int(crypto_pwhash_strbytes()))
        let pw = Array(password.utf8CString.dropLast())
        guard crypto_pwhash_str_alg(&out, pw, UInt64(pw.count), ops, mem, crypto_pwhash_alg_argon2id13()) == 0 else {
            throw ServiceError.internal("password hashing failed")
        }
        return String(cString: out)
    }

    /// Verifies a password against an argon2id string (constant time inside libsodium).
    public static func verifyPassword(_ password: String, hash: String) -> Bool {
        ready()
        let pw = Array(password.utf8CString.dropLast())
        return hash.withCString { crypto_pwhash_str_verify($0, pw, UInt64(pw.count)) == 0 }
    }

    // MARK: Ed25519

    /// An Ed25519 key pair derived from a 32-byte seed.
    public struct SigningKey: Sendable {
        public let publicKey: [UInt8]
        let secretKey: [UInt8]

        /// A key for another purpose, derived from the secret key and a label (never the secret key itself).
        public func derivedKey(_ label: String) -> [UInt8] { Sodium.hmacSHA256(key: secretKey, message: Array(label.utf8)) }

        public init(seed: [UInt8]) throws {
            ready()
            guard seed.count == Int(crypto_sign_seedbytes()) else { throw ServiceError.internal("Ed25519 seed must be 32 bytes") }
            var pk = [UInt8](repeating: 0, count: Int(crypto_sign_publickeybytes()))
            var sk = [UInt8](repeating: 0, count: Int(crypto_sign_secretkeybytes()))
            crypto_sign_seed_keypair(&pk, &sk, seed)
            publicKey = pk
            secretKey = sk
        }

        public func sign(_ message: [UInt8]) -> [UInt8] {
            var sig = [UInt8](repeating: 0, count: Int(crypto_sign_bytes()))
            crypto_sign_detached(&sig, nil, message, UInt64(message.count), secretKey)
            return sig
        }
    }

    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        ready()
        guard signature.count == Int(crypto_sign_bytes()), publicKey.count == Int(crypto_sign_publickeybytes()) else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }

    // MARK: sealed boxes

    /// An X25519 key pair for sealed boxes (`crypto_box_seal`).
    public struct BoxKeyPair: Sendable {
        public let publicKey: [UInt8]
        let secretKey: [UInt8]

        /// A key for another purpose, derived from the secret key and a label (never the secret key itself).
        public func derivedKey(_ label: String) -> [UInt8] { Sodium.hmacSHA256(key: secretKey, message: Array(label.utf8)) }

        public init(seed: [UInt8]) {
            ready()
            var pk = [UInt8](repeating: 0, count: Int(crypto_box_publickeybytes()))
            var sk = [UInt8](repeating: 0, count: Int(crypto_box_secretkeybytes()))
            crypto_box_seed_keypair(&pk, &sk, seed)
            publicKey = pk
            secretKey = sk
        }

        /// Opens a sealed box addressed to this key pair; nil when tampered or addressed elsewhere.
        public func open(_ sealed: [UInt8]) -> [UInt8]? {
            let overhead = Int(crypto_box_sealbytes())
            guard sealed.count >= overhead else { return nil }
            var out = [UInt8](repeating: 0, count: sealed.count - overhead)
            return crypto_box_seal_open(&out, sealed, UInt64(sealed.count), publicKey, secretKey) == 0 ? out : nil
        }
    }

    /// Seals `message` to `publicKey`: only the holder of the secret key can open it.
    public static func seal(_ message: [UInt8], to publicKey: [UInt8]) -> [UInt8] {
        ready()
        var out = [UInt8](repeating: 0, count: message.count + Int(crypto_box_sealbytes()))
        crypto_box_seal(&out, message, UInt64(message.count), publicKey)
        return out
    }
}
