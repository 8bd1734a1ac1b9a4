import Foundation
import Testing

@testable import VigilCrypto

@Suite struct CryptoTests {
    @Test func apiKeyFormat() {
        let k = SecretToken.generate(prefix: SecretToken.apiKeyPrefix)
        #expect(k.hasPrefix("vgl_"))
        #expect(k.count == 4 + 43)
        #expect(SecretToken.isWellFormed(k, prefix: "vgl_"))
        #expect(!SecretToken.isWellFormed(k + "x", prefix: "vgl_"))
        #expect(!SecretToken.isWellFormed("vgl_" + String(repeating: "!", count: 43), prefix: "vgl_"))
        #expect(SecretToken.hash(k).count == 64)
        #expect(SecretToken.hash(k) != SecretToken.hash(SecretToken.generate(prefix: "vgl_")))
    }

    @Test func jwtRoundTripTamperAndExpiry() throws {
        let key = try Sodium.SigningKey(seed: Sodium.randomBytes(32))
        let now = Int(Date().timeIntervalSince1970)
        let claims = AccessClaims(sub: "u1", iat: now, exp: now + 60, jti: "j", tid: "t1")
        let token = try JWT.sign(claims, key: key)
        #expect(JWT.verify(token, publicKey: key.publicKey) == claims)
        // Another key does not verify it.
        let other = try Sodium.SigningKey(seed: Sodium.randomBytes(32))
        #expect(JWT.verify(token, publicKey: other.publicKey) == nil)
        // A changed payload does not verify.
        var parts = token.split(separator: ".").map(String.init)
        let forged = AccessClaims(sub: "admin", iat: now, exp: now + 60, jti: "j", tid: "t1")
        parts[1] = Base64URL.encode(Array(try JSONEncoder().encode(forged)))
        #expect(JWT.verify(parts.joined(separator: "."), publicKey: key.publicKey) == nil)
        // Expired tokens are refused.
        let old = try JWT.sign(AccessClaims(sub: "u1", iat: now - 120, exp: now - 60, jti: "j"), key: key)
        #expect(JWT.verify(old, publicKey: key.publicKey) == nil)
        // alg=none is refused.
        let none = Base64URL.encode(Array(#"{"alg":"none"}"#.utf8)) + "." + parts[1] + "."
        #expect(JWT.verify(none, publicKey: key.publicKey) == nil)
    }

    @Test func argon2idHashesVerify() throws {
        let h = try Sodium.hashPassword("correct horse battery", strength: .minimum)
        #expect(h.hasPrefix("$argon2id$"))
        #expect(Sodium.verifyPassword("correct horse battery", hash: h))
        #expect(!Sodium.verifyPassword("wrong horse battery", hash: h))
    }

    @Test func sealedBoxesOpenOnlyWithTheRightKey() {
        let kp = Sodium.BoxKeyPair(seed: Sodium.randomBytes(32))
        let sealed = Sodium.seal(Array("secret".utf8), to: kp.publicKey)
        #expect(kp.open(sealed) == Array("secret".utf8))
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        #expect(kp.open(tampered) == nil)
        #expect(Sodium.BoxKeyPair(seed: Sodium.randomBytes(32)).open(sealed) == nil)
    }

    @Test func hmacMatchesRFC4231() {
        // RFC 4231 test case 2.
        let mac = Sodium.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Sodium.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func constantTimeCompare() {
        #expect(Sodium.constantTimeEqual("abc", "abc"))
        #expect(!Sodium.constantTimeEqual("abc", "abd"))
        #expect(!Sodium.constantTimeEqual("abc", "abcd"))
    }

    @Test func base64URLRoundTrip() {
        for n in 0..<40 {
            let b = Sodium.randomBytes(n)
            #expect(Base64URL.decode(Base64URL.encode(b)) == b)
        }
        #expect(Base64URL.decode("a+b=") == nil)
    }
}
