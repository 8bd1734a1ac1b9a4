import Bus
import Contracts
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServiceRuntime
import Synchronization
import Testing
import VigilCore
import VigilTesting

@testable import GatewayService

/// The gateway's middleware chain in process (HummingbirdTesting's router mode, no socket) against a real
/// NATS server of the suite's own; a test responder stands in for the service behind one route so the calls
/// can be counted (on the shared server, other suites' identity services would answer the same subject).
@Suite(.serialized) struct GatewayMiddlewareTests {
    struct Echo: Codable, Sendable { var received: [String: JSONValue] }
    final class Calls: Sendable {
        let count = Mutex(0)
        var value: Int { count.withLock { $0 } }
    }

    /// Runs `body` against a gateway built from the real route table with the given settings.
    func withGateway(
        _ nats: PrivateNATS, _ env: [String: String] = [:],
        _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var environment = ["VIGIL_NATS_URL": nats.url, "VIGIL_LOG_LEVEL": "error", "VIGIL_PRINCIPAL_CACHE_MS": "0"]
        environment.merge(env) { $1 }
        let reader = ConfigReader(environment: environment, arguments: [])
        let running = try await ServiceHost.start(
            ServiceDefinition(name: "gateway-test", description: "test", schema: nil), config: ServiceConfig(reader: reader))
        let gateway = try await Gateway(ctx: running.context, settings: GatewaySettings(reader))
        try await gateway.application().test(.router) { client in try await body(client) }
        await running.stop()
    }

    /// A stand-in for the service behind a public route: counts calls and echoes the request it got.
    func echoResponder(_ nats: PrivateNATS, _ subject: String, calls: Calls) async throws -> (ServiceResponder, BusConnection) {
        let bus = try await nats.bus()
        let responder = ServiceResponder(
            bus: bus, name: "echo\(Int.random(in: 1000...9999))", version: "1.0.0",
            description: "test", logger: .init(label: "t"))
        responder.add(Endpoint<[String: JSONValue], Echo>(subject)) { req, _ in
            calls.count.withLock { $0 += 1 }
            if req["fail"] != nil { throw ServiceError.validation("body.fail", "refused") }
            return Echo(received: req)
        }
        try responder.start()
        return (responder, bus)
    }

    func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
    }

    @Test func errorsAreEnvelopesWithTheCorrelationIdAndRateHeaders() async throws {
        let nats = try await PrivateNATS()
        defer { nats.stop() }
        try await withGateway(nats) { client in
            // No credential on a member route: 401 envelope, correlation id echoed, rate-limit headers present.
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.correlationId: "abc-123"]) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.correlationId] == "abc-123")
                #expect(r.headers[.rateLimitLimit] != nil && r.headers[.xRateLimitRemaining] != nil)
                let body = json(r.body)
                #expect(body["error"] as? String == "unauthorized")
                #expect(body["correlation_id"] as? String == "abc-123")
            }
            // A malformed correlation id is replaced; bad JSON is a 400 before anything is forwarded.
            try await client.execute(
                uri: "/api/v1/auth/login", method: .post, headers: [.correlationId: "bad id!"],
                body: ByteBuffer(string: "{bad json")
            ) { r in
                #expect(r.status == .badRequest)
                #expect(json(r.body)["error"] as? String == "invalid_json")
                #expect(r.headers[.correlationId] != "bad id!")
            }
            // A body that is not an object, and an ill-typed query parameter: 422 with the path.
            try await client.execute(uri: "/api/v1/auth/login", method: .post, body: ByteBuffer(string: "[1]")) { r in
                #expect(r.status == .unprocessableContent)
            }
            // Nobody serves the subject: 503, not a 500.
            try await client.execute(uri: "/api/v1/ping", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
            }
            // A credential that is neither a token nor a key.
            try await client.execute(uri: "/api/v1/auth/me", method: .get, headers: [.authorization: "Bearer nonsense"]) { r in
                #expect(r.status == .unauthorized)
                #expect(json(r.body)["error"] as? String == "invalid_token")
            }
            // No route: the router's 404 is an envelope too.
            try await client.execute(uri: "/api/v1/nowhere", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(json(r.body)["error"] as? String == "not_found")
            }
        }
    }

    @Test func bodyLimitAndBurstLimit() async throws {
        let nats = try await PrivateNATS()
        defer { nats.stop() }
        try await withGateway(nats, ["VIGIL_MAX_BODY_BYTES": "64", "VIGIL_RATE_BURST": "3", "VIGIL_RATE_BURST_WINDOW": "600"]) { client in
            try await client.execute(
                uri: "/api/v1/auth/login", method: .post,
                body: ByteBuffer(string: "{\"email\":\"" + String(repeating: "a", count: 100) + "\"}")
            ) { r in
                #expect(r.status == .contentTooLarge)
                #expect(json(r.body)["error"] as? String == "payload_too_large")
            }
            for _ in 0..<2 { try await client.execute(uri: "/api/v1/nowhere-else", method: .get) { _ in } }
            try await client.execute(uri: "/api/v1/auth/me", method: .get) { r in #expect(r.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/auth/me", method: .get) { r in #expect(r.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/auth/me", method: .get) { r in
                #expect(r.status == .tooManyRequests)
                #expect(r.headers[.retryAfter] != nil)
                #expect(r.headers[.rateLimitRemaining] == "0")
            }
        }
    }

    @Test func idempotencyKeyReplaysTheFirstAnswerOnce() async throws {
        let nats = try await PrivateNATS()
        defer { nats.stop() }
        let calls = Calls()
        let (responder, bus) = try await echoResponder(nats, Subjects.Identity.authSignup, calls: calls)
        try await withGateway(nats) { client in
            let key = "k-\(ID.make())"
            let body = #"{"email":"a@example.com","n":1}"#
            var first: [String: Any] = [:]
            try await client.execute(
                uri: "/api/v1/auth/signup?ignored=1", method: .post, headers: [.idempotencyKey: key],
                body: ByteBuffer(string: body)
            ) { r in
                #expect(r.status == .created)
                first = json(r.body)
            }
            // The path parameters and the body reached the service as one object.
            #expect((first["received"] as? [String: Any])?["email"] as? String == "a@example.com")
            try await client.execute(
                uri: "/api/v1/auth/signup?ignored=1", method: .post, headers: [.idempotencyKey: key],
                body: ByteBuffer(string: body)
            ) { r in
                #expect(r.status == .created)
                #expect(r.headers[.idempotentReplayed] == "true")
                #expect(NSDictionary(dictionary: json(r.body)) == NSDictionary(dictionary: first))
            }
            #expect(calls.value == 1)
            // Same key, other body: 409 without calling the service.
            try await client.execute(
                uri: "/api/v1/auth/signup", method: .post, headers: [.idempotencyKey: key],
                body: ByteBuffer(string: #"{"email":"b@example.com"}"#)
            ) { r in
                #expect(r.status == .conflict)
                #expect(json(r.body)["error"] as? String == "idempotency_key_reused")
            }
            // A 4xx from the service is replayed as well; a request without a key is forwarded each time.
            let failKey = "f-\(ID.make())"
            for _ in 0..<2 {
                try await client.execute(
                    uri: "/api/v1/auth/signup", method: .post, headers: [.idempotencyKey: failKey],
                    body: ByteBuffer(string: #"{"fail":true}"#)
                ) { r in
                    #expect(r.status == .unprocessableContent)
                }
            }
            #expect(calls.value == 2)
            try await client.execute(uri: "/api/v1/auth/signup", method: .post, body: ByteBuffer(string: "{}")) { r in
                #expect(r.status == .created)
            }
            try await client.execute(
                uri: "/api/v1/auth/signup", method: .post, headers: [.idempotencyKey: String(repeating: "x", count: 256)],
                body: ByteBuffer(string: "{}")
            ) { r in
                #expect(r.status == .unprocessableContent)
            }
            #expect(calls.value == 3)
        }
        await responder.stop()
        await bus.close()
        // Every request was counted by route and status.
        #expect(VigilMetrics.exposition().contains("route=\"/api/v1/auth/signup\""))
    }
}
