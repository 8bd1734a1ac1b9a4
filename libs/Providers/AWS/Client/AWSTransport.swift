import Foundation
import Net
import VigilCore

/// How a signed AWS request reaches its endpoint.
///
/// - AWS's own endpoints (`<service>.<region>.amazonaws.com`, built from validated region names): the
///   pooled AsyncHTTPClient, keep-alive connections reused across calls.
/// - An endpoint override (moto, LocalStack, a private partition) is a user-supplied URL: every call is
///   checked by the SSRF guard first, then sent to the address the guard resolved — over the pooled client
///   for `http` (the `Host` header keeps the name the request was signed for), over the pinned client for
///   `https` (it verifies the certificate for the name while connecting to the checked address).
/// - A connection that names a proxy profile: every call is tunnelled through the proxy (`CONNECT`) on
///   the pooled client; an endpoint override is still checked by the SSRF guard first (for `http` the
///   tunnel goes to the checked address; for `https` the proxy resolves the name, and TLS verifies it).
/// - Otherwise AWS's own endpoints honour the process's `HTTPS_PROXY`/`NO_PROXY` (see `EnvironmentProxy`).
struct AWSTransport: Sendable {
    let guardrail: SSRFGuard
    let pooled: PooledHTTP
    let pinned: OutboundHTTP
    /// AWS replies (S3 listings, IAM policy documents) can be large; the rest is cut.
    static let maxBody = 64 << 20

    func send(
        method: String, url: String, hostHeader: String, headers: [String: String], body: [UInt8]
    ) async throws
        -> OutboundHTTP.Response
    {
        guard Self.isOverride(url) else {
            return try await pooled.send(method: method, url: url, headers: headers, body: body, maxBody: Self.maxBody)
        }
        let guardrail = self.guardrail
        let target = try await Blocking.run { try guardrail.check(url) }
        if target.isTLS, pooled.proxy != nil {
            return try await pooled.send(method: method, url: url, headers: headers, body: body, maxBody: Self.maxBody)
        }
        guard !target.isTLS, let address = target.addresses.first else {
            let pinned = self.pinned
            return try await Blocking.run {
                try pinned.send(method: method, url: url, headers: headers, body: body, maxBody: Self.maxBody)
            }
        }
        let ip = address.ip.contains(":") ? "[\(address.ip)]" : address.ip
        var h = headers
        h["Host"] = hostHeader
        return try await pooled.send(
            method: method, url: "http://\(ip):\(target.port)\(target.pathAndQuery)", headers: h, body: body, maxBody: Self.maxBody)
    }

    /// Whether a URL is not one of AWS's own `https://….amazonaws.com` endpoints.
    static func isOverride(_ url: String) -> Bool {
        guard let u = URL(string: url), u.scheme == "https", let host = u.host, u.port == nil else { return true }
        return !(host.hasSuffix(".amazonaws.com") && host.allSatisfy { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" })
    }
}
