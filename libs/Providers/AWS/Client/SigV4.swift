import Foundation
import VigilCrypto

/// AWS credentials (secrets never logged or encoded anywhere but the signature).
public struct AWSCredentials: Sendable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// An HTTP request before signing. `query` holds raw (unencoded) names and values.
public struct AWSRequest: Sendable {
    public var method: String
    public var scheme: String
    public var host: String
    public var port: Int?
    /// Raw path, e.g. `/my bucket/key+1`; encoded by the signer and the client the same way.
    public var path: String
    public var query: [(String, String)]
    public var headers: [String: String]
    public var body: [UInt8]

    public init(
        method: String, scheme: String = "https", host: String, port: Int? = nil, path: String = "/",
        query: [(String, String)] = [], headers: [String: String] = [:], body: [UInt8] = []
    ) {
        self.method = method
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// `Host` header value: the port only when it is not the scheme's default.
    public var hostHeader: String {
        guard let port, !(scheme == "https" && port == 443), !(scheme == "http" && port == 80) else { return host }
        return "\(host):\(port)"
    }

    /// The encoded query string in canonical (sorted) order.
    public var encodedQuery: String {
        let pairs: [(String, String)] = query.map { (SigV4.encode($0.0), SigV4.encode($0.1)) }
        let sorted = pairs.sorted { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        return sorted.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }
}

/// Signature Version 4 (AWS4-HMAC-SHA256), as AWS documents it and botocore implements it.
public enum SigV4 {
    /// RFC 3986 encoding of everything but unreserved characters (A–Z a–z 0–9 - _ . ~), upper-case hex.
    public static func encode(_ s: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x2E, 0x5F, 0x7E: out.append(Character(UnicodeScalar(b)))
            case 0x2F where keepSlash: out.append("/")
            default: out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// The encoded path as sent on the wire.
    public static func wirePath(_ path: String) -> String { encode(path.isEmpty ? "/" : path, keepSlash: true) }

    /// Canonical URI: S3 uses the wire path as is; other services encode it once more.
    static func canonicalURI(_ path: String, s3: Bool) -> String {
        let wire = wirePath(path)
        return s3 ? wire : encode(wire, keepSlash: true)
    }

    static func stamps(_ date: Date) -> (amz: String, day: String) {
        var t = time_t(date.timeIntervalSince1970)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 32)
        strftime(&buf, buf.count, "%Y%m%dT%H%M%SZ", &tmv)
        let amz = String(cString: buf)
        return (amz, String(amz.prefix(8)))
    }

    static func hex(_ b: [UInt8]) -> String { Sodium.hex(b) }

    /// Signs in place: adds `X-Amz-Date`, `Host`, the security token (if any), for S3 the payload
    /// hash header, and `Authorization`.
    public static func sign(
        _ req: inout AWSRequest, credentials: AWSCredentials, region: String, service: String,
        date: Date = Date(), s3: Bool = false, unsignedPayload: Bool = false
    ) {
        let (amz, day) = stamps(date)
        req.headers = req.headers.filter { $0.key.lowercased() != "authorization" }
        req.headers["X-Amz-Date"] = amz
        if let token = credentials.sessionToken { req.headers["X-Amz-Security-Token"] = token }
        let payloadHash = unsignedPayload ? "UNSIGNED-PAYLOAD" : hex(Sodium.sha256(req.body))
        if s3 { req.headers["X-Amz-Content-SHA256"] = payloadHash }

        var canonical: [String: String] = ["host": req.hostHeader]
        for (k, v) in req.headers {
            let name = k.lowercased()
            guard !["user-agent", "expect", "x-amzn-trace-id", "authorization"].contains(name) else { continue }
            canonical[name] = v.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).joined(separator: " ")
        }
        let names = canonical.keys.sorted()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [
            req.method.uppercased(), canonicalURI(req.path, s3: s3), req.encodedQuery,
            names.map { "\($0):\(canonical[$0]!)" }.joined(separator: "\n") + "\n", signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amz)\n\(scope)\n\(hex(Sodium.sha256(Array(canonicalRequest.utf8))))"
        var key = Sodium.hmacSHA256(key: Array("AWS4\(credentials.secretAccessKey)".utf8), message: Array(day.utf8))
        for part in [region, service, "aws4_request"] { key = Sodium.hmacSHA256(key: key, message: Array(part.utf8)) }
        let signature = hex(Sodium.hmacSHA256(key: key, message: Array(stringToSign.utf8)))
        req.headers["Authorization"] =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }
}
