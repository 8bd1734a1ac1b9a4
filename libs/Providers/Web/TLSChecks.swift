import Foundation
import Net
import ScanEngine
import VigilCore

/// The TLS endpoint, with our own handshakes: which protocol versions and weak suite families the
/// server accepts (one handshake offering only that), forward secrecy, the certificate chain's verdict
/// (system store plus the connection's extra CAs), the leaf's key, signature, dates and names, and OCSP
/// stapling.
enum TLSChecks {
    /// Weak suite families as OpenSSL names them (offered at TLS 1.0–1.2 with `@SECLEVEL=0`).
    static let weakFamilies: [(name: String, ciphers: String)] = [
        ("static_rsa", "kRSA"), ("cbc_sha1", "SHA1:!aNULL:!eNULL"), ("3des", "3DES"), ("rc4", "RC4"), ("null", "eNULL"), ("export", "EXP"),
        ("anonymous", "aNULL:!eNULL"),
    ]

    static func endpoint(host: String, port: Int, guardrail: SSRFGuard, extraCAs: String?, deadline: ContinuousClock.Instant) throws -> Resource {
        let h = host.contains(":") ? "[\(host)]" : host
        let target = try guardrail.check("https://\(h):\(port)/")
        guard let address = target.addresses.first else { throw NetError("no address for \(host)") }
        func handshake(_ offer: TLSOffer) throws -> TLSHandshakeFacts {
            let conn = try NetConnection(address: address, port: port, timeout: 5)
            defer { conn.shutdown() }
            conn.deadline = deadline
            return try conn.inspectTLS(offer)
        }
        /// nil: the TLS library cannot make this offer (the family is not compiled in), so it is unknown.
        func accepts(_ offer: TLSOffer) throws -> Bool? {
            do { _ = try handshake(offer) } catch is TLSOfferUnsupported { return nil } catch let e as NetError
                where e.description == "TLS handshake refused"
            {
                return false
            }
            return true
        }
        var main: TLSHandshakeFacts
        do {
            main = try handshake(TLSOffer(hostname: host, extraCAs: extraCAs, requestOCSP: true))
        } catch let e as NetError where e.description == "TLS handshake refused" {
            // A server that speaks only legacy TLS: its certificate is still read.
            main = try handshake(TLSOffer(hostname: host, min: .tls1_0, ciphers: "ALL:COMPLEMENTOFALL", extraCAs: extraCAs, requestOCSP: true))
        }
        var offered: [JSONValue] = []
        var unknown: [JSONValue] = []
        for v in TLSOffer.Version.allCases {
            let result = try accepts(TLSOffer(hostname: host, min: v, max: v, ciphers: v == .tls1_3 ? nil : "ALL:COMPLEMENTOFALL"))
            if result == true { offered.append(.string(v.rawValue)) } else if result == nil { unknown.append(.string(v.rawValue)) }
        }
        var weak: [JSONValue] = []
        var weakUnknown: [JSONValue] = []
        for f in weakFamilies {
            let result = try accepts(TLSOffer(hostname: host, min: .tls1_0, max: .tls1_2, ciphers: f.ciphers))
            if result == true { weak.append(.string(f.name)) } else if result == nil { weakUnknown.append(.string(f.name)) }
        }
        let tls13 = offered.contains(.string(TLSOffer.Version.tls1_3.rawValue))
        let below13 = offered.contains { $0 != .string(TLSOffer.Version.tls1_3.rawValue) }
        let fsBelow13 =
            below13 ? (try accepts(TLSOffer(hostname: host, min: .tls1_0, max: .tls1_2, ciphers: "kECDHE:kDHE:!aNULL:!eNULL")) ?? true) : true
        var a: [String: JSONValue] = [
            "host": .string(host), "port": .number(Double(port)), "negotiated_version": .string(main.version),
            "negotiated_cipher": .string(main.cipher),
            "protocols": .array(offered), "protocols_unknown": .array(unknown),
            "legacy_protocols": .array(offered.filter { $0 == .string("TLSv1") || $0 == .string("TLSv1.1") }),
            "tls13": .bool(tls13), "weak_suites": .array(weak), "weak_suites_unknown": .array(weakUnknown),
            "forward_secrecy": .bool(tls13 && !below13 || fsBelow13),
            "negotiated_forward_secrecy": .bool(main.ephemeralKeyBits > 0 || main.version == "TLSv1.3"),
            "verify_code": .number(Double(main.verifyCode)), "verify_error": .string(main.verifyCode == 0 ? "" : main.verifyError),
            "chain_length": .number(Double(main.chainLength)), "ocsp_stapled": .bool(main.ocspStapled),
        ]
        // X509_V_ERR_*: 18 self-signed leaf; 2, 19, 20, 21, 27 an issuer nobody trusts.
        a["trusted"] = .bool(main.verifyCode == 0)
        a["untrusted_issuer"] = .bool([2, 19, 20, 21, 27].contains(main.verifyCode))
        if let leaf = main.leaf {
            let now = Date()
            let daysLeft = leaf.notAfter.map { Int(($0.timeIntervalSince(now) / 86_400).rounded(.down)) } ?? 0
            let sig = leaf.signatureAlgorithm.lowercased()
            a.merge([
                "subject": .string(leaf.subject), "issuer": .string(leaf.issuer), "key_type": .string(leaf.keyType),
                "key_bits": .number(Double(leaf.keyBits)),
                "weak_key": .bool(
                    (leaf.keyType == "RSA" || leaf.keyType == "DSA") && leaf.keyBits < 2048 || leaf.keyType == "EC" && leaf.keyBits < 256),
                "signature_algorithm": .string(leaf.signatureAlgorithm),
                "weak_signature": .bool(sig.contains("sha1") || sig.contains("md5") || sig.contains("md2")),
                "self_signed": .bool(leaf.selfSigned), "hostname_match": .bool(leaf.matchesHost),
                "not_after": .string(leaf.notAfter.map { Timestamp.format($0) } ?? ""), "days_left": .number(Double(daysLeft)),
                "expired": .bool(leaf.notAfter.map { $0 < now } ?? false), "not_yet_valid": .bool(leaf.notBefore.map { $0 > now } ?? false),
                "expiring_soon": .bool(leaf.notAfter.map { $0 >= now && daysLeft < 30 } ?? false),
                "ocsp_responder": .bool(leaf.hasOCSPResponder),
            ]) { $1 }
        }
        return WebScan.resource("tls", id: "tls://\(h):\(port)", name: "\(host):\(port)", host: host, a)
    }
}
