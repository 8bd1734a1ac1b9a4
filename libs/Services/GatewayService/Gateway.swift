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
/// | VIGIL_REQUEST_TIMEOUT_MS | 10000 | bus request timeout (504 after; reads: sent again at 2.5 s, 7.5 s and this, 504 after twice it) |
/// | VIGIL_RATE_BURST / VIGIL_RATE_BURST_WINDOW | 50 / 1 | requests per credential per burst window (s) |
/// | VIGIL_RATE_STEADY / VIGIL_RATE_STEADY_WINDOW | 1200 / 60 | requests per credential per steady window (s) |
/// | VIGIL_OPENAPI_PATH | contracts/openapi.yaml | the OpenAPI document served as JSON |
/// | VIGIL_PRINCIPAL_CACHE_MS | 5000 | how long a resolved credential is reused (0 = never) |
/// | VIGIL_PLAN_LIMITS_CACHE_SECONDS | 60 | how long a workspace's plan API rate is reused |
/// | VIGIL_CONNECTOR_BINARY | vigil-connector beside the gateway's executable | the agent served at /connector/vigil-connector |
/// | VIGIL_SECURE_COOKIES | true | mark the dashboard's cookies Secure (`make run` on plain HTTP sets false) |
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
    var connectorBinary: String
    var secureCookies: Bool

    init(_ r: ConfigReader) {
        secureCookies = r.bool("VIGIL_SECURE_COOKIES", default: true)
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
        let here = URL(fileURLWithPath: CommandLine.arguments.first ?? "vigil-gateway").resolvingSymlinksInPath().deletingLastPathComponent()
        connectorBinary = r.optional("VIGIL_CONNECTOR_BINARY") ?? here.appendingPathComponent("vigil-connector").path
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

/// Per-request context: the client's address, and what the middlewares of a route found out, in order
/// (correlation id → credential → body and payload → principal), for the ones after them.
struct GatewayContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: String?
    var correlationId = ""
    var credential: Credential?
    var rawBody = Data()
    var payload = Data()
    var principal: PrincipalCache.Resolved?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The client's address, or `unknown`.
    var client: String { remoteAddress ?? "unknown" }
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
        planRates = PlanRates(bus: ctx.bus, ttl: .seconds(settings.planLimitsTTLSeconds), logger: ctx.logger)
        try planRates.listen()
    }

    func application() -> some ApplicationProtocol {
        let router = Router(context: GatewayContext.self)
        // Each route gets the concerns it has: public routes skip authentication and the plan's rate,
        // reads skip idempotency. Order: metrics see every outcome; the envelope turns errors into
        // responses; rate-limit headers ride on everything after them.
        for route in RouteTable.all {
            let chain = router.group()
                .add(middleware: MetricsMiddleware(route: route))
                .add(middleware: EnvelopeMiddleware(logger: logger))
                .add(middleware: RateLimitMiddleware(limiter: limiter))
                .add(middleware: BodyMiddleware(route: route, maxBytes: settings.maxBodyBytes))
            if route.access != .public {
                chain
                    .add(
                        middleware: AuthenticationMiddleware(
                            route: route, keys: keys, principals: principals, bus: ctx.bus, timeout: settings.requestTimeout)
                    )
                    .add(middleware: PlanRateMiddleware(planRates: planRates))
            }
            if route.isMutating { chain.add(middleware: IdempotencyMiddleware(route: route, store: idempotency)) }
            chain.on(
                RouterPath(route.routerPath), method: route.method,
                use: ForwardingResponder(route: route, bus: ctx.bus, timeout: settings.requestTimeout).respond)
        }
        router.get("/health") { [self] _, _ in
            let (ok, body) = await GatewayHealth.check(ctx.bus)
            return jsonResponse(ok ? .ok : .serviceUnavailable, body, headers: [:])
        }
        router.get("/status") { [self] _, _ in
            let body = try JSONSerialization.data(
                withJSONObject: [
                    "status": ctx.bus.isConnected ? "ok" : "degraded", "version": ctx.config.version, "api_version": VigilVersion.api,
                    "features": ["contact_captcha": settings.captchaEnabled ? "on" : "off"],
                ], options: [.sortedKeys])
            return jsonResponse(.ok, body, headers: [:])
        }
        ConnectorDownloads.register(on: router, binary: settings.connectorBinary)
        DashboardAssets.register(on: router)
        DashboardSession.register(on: router, bus: ctx.bus, timeout: settings.requestTimeout, secure: settings.secureCookies)
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: VigilMetrics.exposition())))
        }
        router.get("/api/v1/openapi.json") { [self] request, _ -> Response in
            guard let doc = openAPIJSON else {
                return ErrorEnvelope.response(.notFound("OpenAPI document"), correlationId: CorrelationId.pick(request))
            }
            return jsonResponse(.ok, doc, headers: [:])
        }
        return Application(
            responder: EnvelopeResponder(inner: router.buildResponder()),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "vigil"),
            logger: logger)
    }
}

/// Wraps the router so that anything it throws (unknown route, wrong method) becomes the envelope.
struct EnvelopeResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == GatewayContext {
    let inner: Inner

    func respond(to request: Request, context: GatewayContext) async throws -> Response {
        do {
            let response = try await inner.respond(to: request, context: context)
            if response.headers[.contentType] == nil, response.status.code >= 400 {
                throw HTTPError(response.status)
            }
            return response
        } catch let e as HTTPError {
            let code = e.status.code
            let err: ServiceError =
                code == 404
                ? .init(status: 404, error: "not_found", message: "no route for \(request.method.rawValue) \(request.uri.path)")
                : .init(status: code, error: code == 405 ? "method_not_allowed" : "http_error", message: e.body ?? e.status.reasonPhrase)
            return ErrorEnvelope.response(err, correlationId: CorrelationId.pick(request))
        } catch {
            return ErrorEnvelope.response(.internal(), correlationId: CorrelationId.pick(request))
        }
    }
}

/// `/health`: the gateway's own dependency (NATS) and, through it, every service and its database
/// (`vigil.health.<service>`, a second at most). 503 `degraded` names what is down.
enum GatewayHealth {
    static let services = ["identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]

    static func check(_ bus: BusConnection) async -> (ok: Bool, body: Data) {
        guard bus.isConnected else {
            return (false, Data(#"{"dependencies":{"nats":"down"},"status":"degraded"}"#.utf8))
        }
        struct Reply: Decodable { var postgres: String }
        let answers = await withTaskGroup(of: (String, String?).self) { group in
            for s in services {
                group.addTask {
                    let reply = try? await bus.request(Health.subject(s), data: Data(), timeout: .seconds(1))
                    return (s, reply.flatMap { try? JSONDecoder().decode(Reply.self, from: $0.data).postgres })
                }
            }
            var all: [String: String?] = [:]
            for await (s, pg) in group { all[s] = pg }
            return all
        }
        let databases = answers.values.compactMap { $0 }.filter { $0 != "none" }
        let postgres = databases.isEmpty ? "unknown" : databases.contains("down") ? "down" : "up"
        let svc = answers.mapValues { $0 == nil ? "down" : "up" }
        let ok = postgres == "up" && !svc.values.contains("down")
        let object: [String: Any] = [
            "status": ok ? "ok" : "degraded", "dependencies": ["nats": "up", "postgres": postgres], "services": svc,
        ]
        return (ok, (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }
}
