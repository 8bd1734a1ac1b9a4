import Bus
import Contracts
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import ServiceRuntime
import VigilCore
import VigilCrypto

/// Gateway settings, read from the environment.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_HTTP_HOST / VIGIL_HTTP_PORT | 127.0.0.1 / 8080 | listen address |
/// | VIGIL_MAX_BODY_BYTES | 1048576 | larger bodies get 413 |
/// | VIGIL_REQUEST_TIMEOUT_MS | 10000 | bus request timeout (504 after) |
/// | VIGIL_RATE_BURST / VIGIL_RATE_BURST_WINDOW | 50 / 1 | requests per credential per burst window (s) |
/// | VIGIL_RATE_STEADY / VIGIL_RATE_STEADY_WINDOW | 1200 / 60 | requests per credential per steady window (s) |
/// | VIGIL_OPENAPI_PATH | contracts/openapi.yaml | the OpenAPI document served as JSON |
/// | VIGIL_PRINCIPAL_CACHE_MS | 5000 | how long a resolved credential is reused (0 = never) |
/// | VIGIL_PLAN_LIMITS_CACHE_SECONDS | 60 | how long a workspace's plan API rate is reused |
struct GatewaySettings: Sendable {
    var host: String
    var port: Int
    var maxBodyBytes: Int
    var requestTimeout: Duration
    var burst: RateLimiter.Window
    var steady: RateLimiter.Window
    var openAPIPath: String?
    var principalCacheTTL: Duration
    var planLimitsTTLSeconds: Int
    /// Whether contact messages need a captcha (the notifier verifies; /status reports it).
    var captchaEnabled: Bool

    init(_ r: ConfigReader) {
        host = r.string("VIGIL_HTTP_HOST", default: "127.0.0.1")
        port = r.int("VIGIL_HTTP_PORT", default: 8080)
        maxBodyBytes = r.int("VIGIL_MAX_BODY_BYTES", default: 1 << 20)
        requestTimeout = .milliseconds(r.int("VIGIL_REQUEST_TIMEOUT_MS", default: 10_000))
        burst = .init(limit: r.int("VIGIL_RATE_BURST", default: 50), seconds: r.double("VIGIL_RATE_BURST_WINDOW", default: 1))
        steady = .init(limit: r.int("VIGIL_RATE_STEADY", default: 1200), seconds: r.double("VIGIL_RATE_STEADY_WINDOW", default: 60))
        openAPIPath = r.optional("VIGIL_OPENAPI_PATH")
        principalCacheTTL = .milliseconds(r.int("VIGIL_PRINCIPAL_CACHE_MS", default: 5000))
        planLimitsTTLSeconds = max(1, r.int("VIGIL_PLAN_LIMITS_CACHE_SECONDS", default: 60))
        captchaEnabled = r.optional("VIGIL_CAPTCHA_VERIFY_URL") != nil
    }
}

/// The REST edge: authenticates, selects the workspace, rate-limits, applies idempotency, and turns
/// each route of `RouteTable` into one bus request.
public enum GatewayService {
    public static let definition = ServiceDefinition(
        name: "gateway", description: "REST to bus gateway", schema: nil
    ) { ctx in
        let settings = GatewaySettings(ctx.config.reader)
        let gateway = try await Gateway(ctx: ctx, settings: settings)
        return [gateway.application()]
    }
}

/// Per-request context with the client's address.
struct GatewayContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }
}

extension HTTPField.Name {
    static let correlationId = Self("x-correlation-id")!
    static let apiKey = Self("x-api-key")!
    static let tenantSlug = Self("x-tenant-slug")!
    static let idempotencyKey = Self("Idempotency-Key")!
    static let idempotentReplayed = Self("Idempotent-Replayed")!
    static let traceparent = Self("traceparent")!
    static let rateLimitLimit = Self("RateLimit-Limit")!
    static let rateLimitRemaining = Self("RateLimit-Remaining")!
    static let rateLimitReset = Self("RateLimit-Reset")!
    static let rateLimitPolicy = Self("RateLimit-Policy")!
    static let xRateLimitLimit = Self("X-RateLimit-Limit")!
    static let xRateLimitRemaining = Self("X-RateLimit-Remaining")!
    static let xRateLimitReset = Self("X-RateLimit-Reset")!
}

final class Gateway: Sendable {
    let ctx: ServiceContext
    let settings: GatewaySettings
    let limiter: RateLimiter
    let keys: VerificationKeys
    let idempotency: IdempotencyStore
    let openAPIJSON: Data?
    let logger: Logger
    let principals: PrincipalCache
    let planRates: PlanRates

    init(ctx: ServiceContext, settings: GatewaySettings) async throws {
        self.ctx = ctx
        self.settings = settings
        self.logger = ctx.logger
        limiter = RateLimiter(burst: settings.burst, steady: settings.steady)
        keys = VerificationKeys(bus: ctx.bus)
        idempotency = IdempotencyStore(bucket: try await ctx.jetStream.keyValue(bucket: "vigil_idempotency", ttl: .seconds(24 * 3600)))
        openAPIJSON = OpenAPIDocument.load(explicitPath: settings.openAPIPath, logger: ctx.logger)
        principals = PrincipalCache(ttl: settings.principalCacheTTL)
        try principals.listen(on: ctx.bus)
        planRates = PlanRates(bus: ctx.bus, ttl: Double(settings.planLimitsTTLSeconds), logger: ctx.logger)
    }

    func application() -> some ApplicationProtocol {
        let router = Router(context: GatewayContext.self)
        for route in RouteTable.all {
            router.on(RouterPath(route.routerPath), method: route.method) { [self] request, context in
                await handle(route, request, context)
            }
        }
        router.get("/health") { [self] _, _ in
            let ok = ctx.bus.isConnected
            return jsonResponse(ok ? .ok : .serviceUnavailable, Data(#"{"status":"\#(ok ? "ok" : "degraded")"}"#.utf8), headers: [:])
        }
        router.get("/status") { [self] _, _ in
            let body = try JSONSerialization.data(withJSONObject: [
                "status": ctx.bus.isConnected ? "ok" : "degraded", "version": ctx.config.version, "api_version": VigilVersion.api,
                "features": ["contact_captcha": settings.captchaEnabled ? "on" : "off"],
            ], options: [.sortedKeys])
            return jsonResponse(.ok, body, headers: [:])
        }
        router.get("/metrics") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: VigilMetrics.exposition())))
        }
        router.get("/api/v1/openapi.json") { [self] request, _ -> Response in
            guard let doc = openAPIJSON else {
                return errorResponse(.notFound("OpenAPI document"), correlationId: correlationId(request), headers: [:])
            }
            return jsonResponse(.ok, doc, headers: [:])
        }
        let responder = EnvelopeResponder(inner: router.buildResponder(), gateway: self)
        return Application(responder: responder,
                           configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "vigil"),
                           logger: logger)
    }

    func correlationId(_ request: Request) -> String {
        if let c = request.headers[.correlationId], (1...128).contains(c.count),
           c.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) }) {
            return c
        }
        return ID.make()
    }

    // MARK: the request pipeline

    func handle(_ route: Route, _ request: Request, _ context: GatewayContext) async -> Response {
        let start = ContinuousClock.now
        let cid = correlationId(request)
        var headers: HTTPFields = [.correlationId: cid]
        let response: Response
        do {
            response = try await pipeline(route, request, context, cid, &headers)
        } catch let e as ServiceError {
            response = errorResponse(e, correlationId: cid, headers: headers)
        } catch let e as BusError {
            response = errorResponse(e.serviceError, correlationId: cid, headers: headers)
        } catch {
            logger.error("gateway failure", metadata: ["error": "\(error)", "correlation_id": "\(cid)"])
            response = errorResponse(.internal(), correlationId: cid, headers: headers)
        }
        let dims = [("method", route.method.rawValue), ("route", route.path), ("status", String(response.status.code))]
        Counter(label: "vigil_gateway_requests_total", dimensions: dims).increment()
        Timer(label: "vigil_gateway_request_duration", dimensions: [("route", route.path)])
            .recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        return response
    }

    func pipeline(_ route: Route, _ request: Request, _ context: GatewayContext, _ cid: String,
                  _ headers: inout HTTPFields) async throws -> Response {
        let credential = Self.credential(request)
        let credentialHash = credential.map(SecretToken.hash)
        let client = context.remoteAddress ?? "unknown"

        // 1. Rate limit per credential (or per client address when anonymous).
        let limitKey = credentialHash.map { "c:" + $0 } ?? "a:" + client
        let decision = limiter.check(limitKey)
        headers[.rateLimitLimit] = String(decision.limit)
        headers[.rateLimitRemaining] = String(decision.remaining)
        headers[.rateLimitReset] = String(decision.resetSeconds)
        headers[.rateLimitPolicy] = decision.policy
        headers[.xRateLimitLimit] = String(decision.limit)
        headers[.xRateLimitRemaining] = String(decision.remaining)
        headers[.xRateLimitReset] = String(decision.resetSeconds)
        guard decision.allowed else {
            headers[.retryAfter] = String(decision.resetSeconds)
            throw ServiceError.tooManyRequests("rate limit exceeded; retry after \(decision.resetSeconds) s")
        }

        // 2. Body: bounded, JSON object.
        var rawBody = Data()
        if route.takesBody {
            let buffer: ByteBuffer
            do {
                buffer = try await request.body.collect(upTo: settings.maxBodyBytes)
            } catch {
                throw ServiceError(status: 413, error: "payload_too_large", message: "request body exceeds \(settings.maxBodyBytes) bytes")
            }
            rawBody = Data(buffer: buffer)
        }
        let payload = try buildPayload(route, request, context, rawBody)

        // 3. Authentication and role.
        let resolved = try await authenticate(route, request, credential: credential, credentialHash: credentialHash,
                                              client: client, cid: cid)
        let principal = resolved?.principal
        if let principal { try await planRates.check(tenant: principal.tenantId) }
        let busContext = CallContext(tenantId: principal?.tenantId, principal: resolved?.header, correlationId: cid,
                                     idempotencyKey: request.headers[.idempotencyKey],
                                     traceparent: request.headers[.traceparent], clientAddress: client,
                                     userAgent: request.headers[.userAgent])

        // 4. Idempotency for mutating routes.
        if route.isMutating, let key = request.headers[.idempotencyKey] {
            guard (1...255).contains(key.count) else {
                throw ServiceError.validation("header.idempotency-key", "must be 1 to 255 characters")
            }
            let scopeId = principal.map { "\($0.tenantId):\($0.userId ?? $0.apiKeyId ?? "")" } ?? "anon:" + client
            let slot = IdempotencyStore.slot(scope: scopeId, method: route.method.rawValue, path: request.uri.path, key: key)
            let fingerprint = SecretToken.hash(request.uri.path + "\n" + String(decoding: rawBody, as: UTF8.self))
            switch try await idempotency.begin(slot: slot, fingerprint: fingerprint) {
            case .replay(let status, let body):
                headers[.idempotentReplayed] = "true"
                return jsonResponse(HTTPResponse.Status(code: status), body, headers: headers)
            case .proceed:
                let response: (Int, Data)
                do {
                    response = try await forward(route, payload, busContext)
                } catch let e as ServiceError where e.status < 500 {
                    let body = envelope(e, correlationId: cid)
                    try await idempotency.finish(slot: slot, fingerprint: fingerprint, status: e.status, body: body)
                    return jsonResponse(HTTPResponse.Status(code: e.status), body, headers: headers)
                } catch {
                    try? await idempotency.abandon(slot: slot)
                    throw error
                }
                try await idempotency.finish(slot: slot, fingerprint: fingerprint, status: response.0, body: response.1)
                return jsonResponse(HTTPResponse.Status(code: response.0), response.1, headers: headers)
            }
        }
        let (status, body) = try await forward(route, payload, busContext)
        if route.download { return try fileResponse(body, headers: headers) }
        return jsonResponse(HTTPResponse.Status(code: status), body, headers: headers)
    }

    /// A file produced by a service (reports): raw bytes with their type and a download file name.
    func fileResponse(_ body: Data, headers: HTTPFields) throws -> Response {
        guard let file = try? JSON.decode(FileReply.self, from: body), let bytes = Data(base64Encoded: file.contentBase64) else {
            throw ServiceError.internal()
        }
        var h = headers
        h[.contentType] = file.contentType
        let safe = file.filename.filter { $0.isLetter || $0.isNumber || "-_.".contains($0) }
        h[.contentDisposition] = "attachment; filename=\"\(safe)\""
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func forward(_ route: Route, _ payload: Data, _ busContext: CallContext) async throws -> (Int, Data) {
        let reply = try await ctx.bus.requestJSON(route.subject, body: payload, context: busContext, timeout: settings.requestTimeout)
        return (route.status.code, route.status == .noContent ? Data() : reply)
    }

    static func credential(_ request: Request) -> String? {
        if let auth = request.headers[.authorization] {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return String(parts[1]).trimmingCharacters(in: .whitespaces)
            }
            return auth.trimmingCharacters(in: .whitespaces)
        }
        return request.headers[.apiKey]?.trimmingCharacters(in: .whitespaces)
    }

    /// Merges the JSON body with path parameters and typed query parameters into the bus request.
    func buildPayload(_ route: Route, _ request: Request, _ context: GatewayContext, _ raw: Data) throws -> Data {
        if route.rawBody {
            // Signed payloads (Stripe webhooks): the exact bytes and the headers that sign them.
            var headers: [String: String] = [:]
            for field in request.headers where ["stripe-signature", "content-type"].contains(field.name.canonicalName) {
                headers[field.name.canonicalName] = field.value
            }
            return try JSONSerialization.data(withJSONObject: ["raw_base64": raw.base64EncodedString(), "headers": headers])
        }
        var object: [String: Any] = [:]
        if route.takesBody, !raw.isEmpty, !raw.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            let parsed: Any
            do {
                parsed = try JSONSerialization.jsonObject(with: raw, options: [.fragmentsAllowed])
            } catch {
                throw ServiceError.badRequest("request body is not valid JSON", code: "invalid_json")
            }
            guard let dict = parsed as? [String: Any] else {
                throw ServiceError.validation("body", "must be a JSON object")
            }
            object = dict
        }
        for (name, type) in route.query {
            guard let value = request.uri.queryParameters.get(name) else { continue }
            switch type {
            case .string: object[name] = value
            case .int:
                guard let i = Int(value) else { throw ServiceError.validation("query.\(name)", "must be an integer") }
                object[name] = i
            case .bool:
                guard let b = ["true": true, "false": false, "1": true, "0": false][value.lowercased()] else {
                    throw ServiceError.validation("query.\(name)", "must be true or false")
                }
                object[name] = b
            }
        }
        for name in route.pathParameters {
            object[name] = context.parameters.get(name) ?? ""
        }
        return try JSONSerialization.data(withJSONObject: object)
    }

    // MARK: authentication

    func authenticate(_ route: Route, _ request: Request, credential: String?, credentialHash: String?, client: String,
                      cid: String) async throws -> PrincipalCache.Resolved? {
        if route.access == .public { return nil }
        guard let credential, !credential.isEmpty else {
            if route.access == .optional { return nil }
            throw ServiceError.unauthorized("send a bearer token or an API key (Authorization: Bearer … or x-api-key)")
        }
        let slug = request.headers[.tenantSlug]
        let resolve: ResolvePrincipalRequest
        if JWT.looksLikeJWT(credential) {
            guard let claims = await keys.verify(credential) else {
                throw ServiceError(status: 401, error: "invalid_token", message: "access token is invalid or expired")
            }
            resolve = ResolvePrincipalRequest(kind: "jwt", userId: claims.sub, sessionTenantId: claims.tid, tenantSlug: slug)
        } else if SecretToken.isWellFormed(credential, prefix: SecretToken.apiKeyPrefix) {
            resolve = ResolvePrincipalRequest(kind: "api_key", apiKeyHash: credentialHash, tenantSlug: slug)
        } else {
            throw ServiceError(status: 401, error: "invalid_token", message: "credential is neither a valid access token nor an API key")
        }
        let cacheKey = (credentialHash ?? "") + "|" + (slug ?? "")
        let resolved: PrincipalCache.Resolved
        if let cached = principals.get(cacheKey) {
            resolved = cached
        } else {
            let p = try await ctx.bus.request(IdentityAPI.resolvePrincipal, resolve,
                                              context: CallContext(correlationId: cid, clientAddress: client),
                                              timeout: settings.requestTimeout)
            resolved = .init(principal: p, header: String(decoding: try JSON.encode(p), as: UTF8.self))
            principals.put(cacheKey, resolved)
        }
        let principal = resolved.principal
        switch route.access {
        case .role(let needed):
            guard principal.role.rank >= needed.rank, principal.role != .billing else {
                throw ServiceError.forbidden("requires the \(needed.rawValue) role or higher")
            }
        default: break
        }
        if principal.kind == "api_key" {
            let scope = route.isMutating ? "write" : "read"
            guard principal.scopes.contains(scope) || principal.scopes.contains("admin") else {
                throw ServiceError.forbidden("API key lacks the \(scope) scope")
            }
        }
        return resolved
    }

    // MARK: responses

    func envelope(_ e: ServiceError, correlationId: String) -> Data {
        var obj: [String: Any] = ["error": e.error, "message": e.message, "correlation_id": correlationId]
        if let issues = e.issues { obj["issues"] = issues.map { ["path": $0.path, "message": $0.message] } }
        if let q = e.quota {
            obj["quota"] = ["name": q.name, "limit": q.limit, "used": q.used, "resets_at": q.resetsAt.map { $0 as Any } ?? NSNull()] as [String: Any]
        }
        return (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    func errorResponse(_ e: ServiceError, correlationId: String, headers: HTTPFields) -> Response {
        var h = headers
        h[.correlationId] = correlationId
        return jsonResponse(HTTPResponse.Status(code: e.status), envelope(e, correlationId: correlationId), headers: h)
    }

    func jsonResponse(_ status: HTTPResponse.Status, _ body: Data, headers: HTTPFields) -> Response {
        var h = headers
        if status == .noContent {
            return Response(status: status, headers: h)
        }
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Wraps the router so that anything it throws (unknown route, wrong method) becomes the envelope.
struct EnvelopeResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == GatewayContext {
    let inner: Inner
    let gateway: Gateway

    func respond(to request: Request, context: GatewayContext) async throws -> Response {
        do {
            let response = try await inner.respond(to: request, context: context)
            if response.headers[.contentType] == nil, response.status.code >= 400 {
                throw HTTPError(response.status)
            }
            return response
        } catch let e as HTTPError {
            let code = e.status.code
            let err: ServiceError = code == 404
                ? .init(status: 404, error: "not_found", message: "no route for \(request.method.rawValue) \(request.uri.path)")
                : .init(status: code, error: code == 405 ? "method_not_allowed" : "http_error", message: e.body ?? e.status.reasonPhrase)
            return gateway.errorResponse(err, correlationId: gateway.correlationId(request), headers: [:])
        } catch {
            return gateway.errorResponse(.internal(), correlationId: gateway.correlationId(request), headers: [:])
        }
    }
}
