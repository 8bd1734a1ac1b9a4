import COpenSSL
import Foundation
import VigilCore

/// RSA key pairs for SSH access to Linux hosts (OpenSSL: libsodium has no RSA).
public enum SSHKeyPair {
    public struct Generated: Sendable {
        /// `ssh-rsa AAAA… comment` for authorized_keys.
        public let publicKey: String
        /// PEM (`BEGIN RSA PRIVATE KEY`), returned once to the user.
        public let privateKeyPEM: String
        /// `SHA256:…` as `ssh-keygen -l` prints it.
        public let fingerprint: String
    }

    /// Generates an RSA key pair. Slow (0.5–4 s for 4096 bits): call it on a Dispatch thread.
    public static func generateRSA(bits: Int32 = 4096, comment: String) throws -> Generated {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nil) else { throw ServiceError.internal("RSA context") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1 else {
            throw ServiceError.internal("RSA key generation setup failed")
        }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_keygen(ctx, &pkey) == 1, let pkey else { throw ServiceError.internal("RSA key generation failed") }
        defer { EVP_PKEY_free(pkey) }

        guard let bio = BIO_new(BIO_s_mem()) else { throw ServiceError.internal("BIO") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PrivateKey_traditional(bio, pkey, nil, nil, 0, nil, nil) == 1 else { throw ServiceError.internal("PEM encoding failed") }
        var pem = [UInt8](repeating: 0, count: Int(BIO_ctrl_pending(bio)))
        let n = BIO_read(bio, &pem, Int32(pem.count))
        let privatePEM = String(decoding: pem.prefix(Int(max(0, n))), as: UTF8.self)

        func param(_ name: String) throws -> [UInt8] {
            var bn: OpaquePointer? = nil
            guard EVP_PKEY_get_bn_param(pkey, name, &bn) == 1, let bn else { throw ServiceError.internal("RSA parameter \(name)") }
            defer { BN_free(bn) }
            var out = [UInt8](repeating: 0, count: Int((BN_num_bits(bn) + 7) / 8))
            BN_bn2bin(bn, &out)
            return out
        }
        let e = try param("e")
        let modulus = try param("n")
        // RFC 4253 §6.6: string "ssh-rsa", mpint e, mpint n (mpints get a leading zero when the high bit is set).
        func string(_ b: [UInt8]) -> [UInt8] {
            let len = UInt32(b.count)
            return [UInt8(len >> 24), UInt8((len >> 16) & 0xff), UInt8((len >> 8) & 0xff), UInt8(len & 0xff)] + b
        }
        func mpint(_ b: [UInt8]) -> [UInt8] { string((b.first ?? 0) & 0x80 != 0 ? [0] + b : b) }
        let blob = string(Array("ssh-rsa".utf8)) + mpint(e) + mpint(modulus)
        let fingerprint = "SHA256:" + Data(Sodium.sha256(blob)).base64EncodedString().replacingOccurrences(of: "=", with: "")
        let safeComment = comment.filter { $0.isASCII && !$0.isNewline }
        return Generated(
            publicKey: "ssh-rsa \(Data(blob).base64EncodedString()) \(safeComment)", privateKeyPEM: privatePEM,
            fingerprint: fingerprint)
    }
}
