import HTTPTypes
import Hummingbird
import VigilCore
import VigilCrypto

/// Rate limit per credential (per client address when anonymous), burst and steady windows. Every
/// response, errors included, carries `RateLimit-*` and `X-RateLimit-*`; a 429 carries `Retry-After`.
/// It also reads the credential once for the middlewares after it.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let limiter: RateLimiter

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.credential = Credential(request)
        let key = context.credential.map { "c:" + $0.hash } ?? "a:" + context.client
        let decision = limiter.check(key)
        let (limit, remaining, reset) = (String(decision.limit), String(decision.remaining), String(decision.resetSeconds))
        var fields: HTTPFields = [
            .rateLimitLimit: limit, .rateLimitRemaining: remaining, .rateLimitReset: reset, .rateLimitPolicy: decision.policy,
            .xRateLimitLimit: limit, .xRateLimitRemaining: remaining, .xRateLimitReset: reset,
        ]
        guard decision.allowed else {
            fields[.retryAfter] = String(decision.resetSeconds)
            throw HeaderedError(
                underlying: ServiceError.tooManyRequests("rate limit exceeded; retry after \(decision.resetSeconds) s"), headers: fields)
        }
        do {
            var response = try await next(request, context)
            response.headers.append(contentsOf: fields)
            return response
        } catch {
            throw HeaderedError(underlying: error, headers: fields)
        }
    }
}

/// The caller's credential as sent (`Authorization: Bearer …`, a bare `Authorization` value,
/// `x-api-key`, or the dashboard's HttpOnly session cookie) and its hash, which keys the rate limiter
/// and the principal cache.
struct Credential: Sendable {
    let value: String
    let hash: String
    /// From the session cookie: changes also need the CSRF token (see `DashboardSession`).
    var fromCookie = false

    init?(_ request: Request) {
        let raw: String?
        if request.headers[.authorization] == nil, request.headers[.apiKey] == nil,
            let session = DashboardSession.cookie(DashboardSession.sessionCookie, in: request)
        {
            raw = session
            fromCookie = true
        } else if let auth = request.headers[.authorization] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            raw = Self.trimmed(parts.count == 2 && parts[0].lowercased() == "bearer" ? parts[1] : Substring(auth))
        } else {
            raw = request.headers[.apiKey].map { Self.trimmed(Substring($0)) }
        }
        guard let raw else { return nil }
        value = raw
        hash = SecretToken.hash(raw)
    }

    /// Without leading and trailing spaces and tabs (Foundation's `trimmingCharacters(in:)` builds a
    /// character set per call: a twentieth of the gateway's time per request in a profile).
    static func trimmed(_ s: Substring) -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = s.firstIndex(where: { !blank($0) }), let last = s.lastIndex(where: { !blank($0) }) else { return "" }
        return String(s[first...last])
    }
}
