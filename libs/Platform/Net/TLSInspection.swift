import COpenSSL
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// How one TLS handshake is offered: the protocol range, the TLS ≤ 1.2 cipher list (OpenSSL syntax),
/// extra trusted CAs. Handshakes for inspection never fail on verification: the verdict is reported.
public struct TLSOffer: Sendable {
    public enum Version: String, Sendable, CaseIterable, Codable {
        case tls1_0 = "TLSv1", tls1_1 = "TLSv1.1", tls1_2 = "TLSv1.2", tls1_3 = "TLSv1.3"
        var code: Int32 {
            switch self {
            case .tls1_0: return TLS1_VERSION
            case .tls1_1: return TLS1_1_VERSION
            case .tls1_2: return TLS1_2_VERSION
            case .tls1_3: return TLS1_3_VERSION
            }
        }
    }

    public var hostname: String
    public var min: Version?
    public var max: Version?
    /// OpenSSL cipher string for TLS ≤ 1.2 (`@SECLEVEL=0` is added so legacy suites can be offered).
    public var ciphers: String?
    /// PEM certificates trusted on top of the system store.
    public var extraCAs: String?
    public var requestOCSP: Bool

    public init(
        hostname: String, min: Version? = nil, max: Version? = nil, ciphers: String? = nil, extraCAs: String? = nil, requestOCSP: Bool = false
    ) {
        self.hostname = hostname
        self.min = min
        self.max = max
        self.ciphers = ciphers
        self.extraCAs = extraCAs
        self.requestOCSP = requestOCSP
    }
}

/// What a certificate says, as checks read it.
public struct CertificateFacts: Sendable, Codable, Equatable {
    public var subject: String
    public var issuer: String
    public var keyType: String
    public var keyBits: Int
    public var signatureAlgorithm: String
    public var notBefore: Date?
    public var notAfter: Date?
    public var selfSigned: Bool
    public var matchesHost: Bool
    /// The certificate names an OCSP responder (so a server can staple its answer).
    public var hasOCSPResponder: Bool
}

/// The outcome of one handshake.
public struct TLSHandshakeFacts: Sendable {
    public var version: String
    public var cipher: String
    /// OpenSSL's verification of the chain against the system store and the extra CAs (0 = trusted).
    public var verifyCode: Int
    public var verifyError: String
    public var leaf: CertificateFacts?
    public var chainLength: Int
    public var ocspStapled: Bool
    /// Bits of the ephemeral key exchange (0: static key exchange, no forward secrecy).
    public var ephemeralKeyBits: Int
}

/// The TLS library refused the offer itself (no such cipher compiled in, a protocol disabled at build).
public struct TLSOfferUnsupported: Error, Sendable {
    public let reason: String
}

extension NetConnection {
    /// One client handshake as offered; reports the negotiated version, suite, chain verdict and leaf
    /// facts. Throws `TLSOfferUnsupported` when OpenSSL cannot make the offer, `NetError` when the peer
    /// refuses it (no common version or suite).
    public func inspectTLS(_ o: TLSOffer) throws -> TLSHandshakeFacts {
        guard let c = SSL_CTX_new(TLS_client_method()) else { throw NetError("TLS context") }
        ctx = c
        SSL_CTX_set_default_verify_paths(c)
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nil)
        guard vigil_ssl_ctx_set_proto_range(c, o.min?.code ?? 0, o.max?.code ?? 0) == 1 else {
            throw TLSOfferUnsupported(reason: "protocol range not available")
        }
        let legacy = o.min.map { [.tls1_0, .tls1_1].contains($0) } ?? false
        if let list = o.ciphers {
            guard SSL_CTX_set_cipher_list(c, list + ":@SECLEVEL=0") == 1 else { throw TLSOfferUnsupported(reason: "no such suites: \(list)") }
        } else if legacy {
            SSL_CTX_set_cipher_list(c, "ALL:@SECLEVEL=0")
        }
        if let pem = o.extraCAs, let store = SSL_CTX_get_cert_store(c) {
            for cert in Self.certificates(pem: pem) {
                X509_STORE_add_cert(store, cert)
                X509_free(cert)
            }
        }
        guard let s = SSL_new(c) else { throw NetError("TLS session") }
        ssl = s
        SSL_set_fd(s, descriptor)
        let isIP = o.hostname.contains(":") || o.hostname.allSatisfy { $0.isNumber || $0 == "." }
        if !isIP { _ = vigil_ssl_set_sni(s, o.hostname) }
        if o.requestOCSP { vigil_ssl_request_ocsp(s) }
        guard SSL_connect(s) == 1 else {
            ERR_clear_error()
            throw NetError("TLS handshake refused")
        }
        let code = Int(SSL_get_verify_result(s))
        var leaf: CertificateFacts? = nil
        if let cert = SSL_get1_peer_certificate(s) {
            leaf = Self.facts(cert, host: o.hostname, isIP: isIP)
            X509_free(cert)
        }
        return TLSHandshakeFacts(
            version: String(cString: SSL_get_version(s)),
            cipher: SSL_get_current_cipher(s).map { String(cString: SSL_CIPHER_get_name($0)) } ?? "",
            verifyCode: code, verifyError: String(cString: X509_verify_cert_error_string(CLong(code))), leaf: leaf,
            chainLength: Int(vigil_chain_length(s)), ocspStapled: vigil_ssl_ocsp_response_length(s) > 0,
            ephemeralKeyBits: Int(vigil_ssl_ephemeral_key_bits(s)))
    }

    /// Every certificate in a PEM bundle (caller frees).
    static func certificates(pem: String) -> [OpaquePointer] {
        var out: [OpaquePointer] = []
        let bytes = Array(pem.utf8)
        bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return }
            defer { BIO_free(bio) }
            while out.count < 100, let cert = PEM_read_bio_X509(bio, nil, nil, nil) { out.append(cert) }
        }
        ERR_clear_error()
        return out
    }

    static func name(_ n: OpaquePointer?) -> String {
        guard let n else { return "" }
        var buf = [CChar](repeating: 0, count: 512)
        return X509_NAME_oneline(n, &buf, Int32(buf.count)).map { String(cString: $0) } ?? ""
    }

    static func date(_ t: UnsafePointer<ASN1_TIME>?) -> Date? {
        guard let t else { return nil }
        var tm = tm()
        guard ASN1_TIME_to_tm(t, &tm) == 1 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm)))
    }

    static func facts(_ cert: OpaquePointer, host: String, isIP: Bool) -> CertificateFacts {
        var keyType = "unknown"
        var bits = 0
        if let key = X509_get0_pubkey(cert) {
            bits = Int(EVP_PKEY_get_bits(key))
            switch EVP_PKEY_get_base_id(key) {
            case EVP_PKEY_RSA: keyType = "RSA"
            case EVP_PKEY_EC: keyType = "EC"
            case EVP_PKEY_ED25519: keyType = "Ed25519"
            case EVP_PKEY_DSA: keyType = "DSA"
            default: keyType = "other"
            }
        }
        let matches =
            isIP
            ? X509_check_ip_asc(cert, host, 0) == 1
            : X509_check_host(cert, host, host.utf8.count, 0, nil) == 1
        return CertificateFacts(
            subject: name(X509_get_subject_name(cert)), issuer: name(X509_get_issuer_name(cert)), keyType: keyType, keyBits: bits,
            signatureAlgorithm: String(cString: OBJ_nid2ln(X509_get_signature_nid(cert))), notBefore: date(X509_get0_notBefore(cert)),
            notAfter: date(X509_get0_notAfter(cert)), selfSigned: X509_check_issued(cert, cert) == X509_V_OK, matchesHost: matches,
            hasOCSPResponder: vigil_has_ocsp_responder(cert) == 1)
    }
}
