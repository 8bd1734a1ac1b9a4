import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceRuntime
import Store
import ServiceLifecycle
import Synchronization
import VigilCore
import VigilCrypto

/// Webhook settings.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_NOTIFIER_SEED | random per process (warns) | base64url 32-byte seed of the key that seals endpoint secrets |
/// | VIGIL_WEBHOOK_ALLOW_LOOPBACK / _PRIVATE | false | let endpoints point at loopback / private addresses |
/// | VIGIL_WEBHOOK_TIMEOUT_MS | 10000 | per attempt |
/// | VIGIL_WEBHOOK_MAX_ATTEMPTS | 15 | about a day with the default backoff |
/// | VIGIL_WEBHOOK_BACKOFF_MS | 2000 | first retry delay (doubles, ±20 % jitter, capped at 3 h) |
/// | VIGIL_WEBHOOK_DISABLE_AFTER | 50 | consecutive failed attempts before an endpoint is disabled |
struct WebhookSettings: Sendable {
    var keys: Sodium.BoxKeyPair
    var guardrail: SSRFGuard
    var timeout: Double
    var maxAttempts: Int
    var backoffMs: Int
    var disableAfter: Int

    init(_ r: ConfigReader, logger: Logger) throws {
        if let s = r.optional("VIGIL_NOTIFIER_SEED") {
            guard let b = Base64URL.decode(s), b.count == 32 else { throw ServiceError.internal("VIGIL_NOTIFIER_SEED must be 32 bytes in base64url") }
            keys = Sodium.BoxKeyPair(seed: b)
        } else {
            logger.warning("VIGIL_NOTIFIER_SEED is not set: webhook secrets sealed now cannot be opened after a restart")
            keys = Sodium.BoxKeyPair(seed: Sodium.randomBytes(32))
        }
        guardrail = SSRFGuard(allowLoopback: r.bool("VIGIL_WEBHOOK_ALLOW_LOOPBACK", default: false),
                              allowPrivate: r.bool("VIGIL_WEBHOOK_ALLOW_PRIVATE", default: false))
        timeout = Double(r.int("VIGIL_WEBHOOK_TIMEOUT_MS", default: 10_000)) / 1000
        maxAttempts = r.int("VIGIL_WEBHOOK_MAX_ATTEMPTS", default: 15)
        backoffMs = r.int("VIGIL_WEBHOOK_BACKOFF_MS", default: 2000)
        disableAfter = r.int("VIGIL_WEBHOOK_DISABLE_AFTER", default: 50)
    }
}

/// Standard Webhooks signing: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
enum WebhookSignature {
    static let secretPrefix = "whsec_"

    static func newSecret() -> String { secretPrefix + Data(Sodium.randomBytes(32)).base64EncodedString() }

    static func key(_ secret: String) -> [UInt8]? {
        guard secret.hasPrefix(secretPrefix), let d = Data(base64Encoded: String(secret.dropFirst(secretPrefix.count))),
              (24...64).contains(d.count) else { return nil }
        return Array(d)
    }

    static func sign(id: String, timestamp: Int, body: [UInt8], secrets: [String]) -> String {
        let message = Array("\(id).\(timestamp).".utf8) + body
        return secrets.compactMap(key).map { "v1," + Data(Sodium.hmacSHA256(key: $0, message: message)).base64EncodedString() }
            .joined(separator: " ")
    }
}

/// Event types a webhook may subscribe to (patterns like `finding.*` match by prefix).
enum EventCatalog {
    static let types: [(String, String)] = [
        ("user.signed_up", "A user created an account and a workspace"),
        ("user.password_changed", "A user changed their password"),
        ("user.password_reset", "A user reset their password"),
        ("workspace.created", "A workspace (or MSP child) was created"),
        ("workspace.updated", "Workspace name or settings changed"),
        ("membership.role_changed", "A member's role changed"),
        ("membership.removed", "A member left or was removed"),
        ("invitation.created", "An invitation was sent"),
        ("invitation.accepted", "An invitation was accepted"),
        ("apikey.created", "An API key was created"),
        ("apikey.revoked", "An API key was revoked"),
        ("remediation.policy_updated", "The remediation policy changed"),
        ("webhook.endpoint_disabled", "A webhook endpoint was disabled after repeated failures"),
        ("webhook.test", "A test delivery requested by a user"),
    ]

    static func matches(_ patterns: [String], _ type: String) -> Bool {
        patterns.contains { p in
            p == "*" || p == type || (p.hasSuffix(".*") && type.hasPrefix(String(p.dropLast(1))))
        }
    }

    static let severities = ["info", "low", "medium", "high", "critical"]
}

/// Fans events out to matching endpoints and delivers them with retries.
final class WebhookDispatcher: Sendable {
    let store: Store
    let settings: WebhookSettings
    let logger: Logger
    let wake = Mutex<CheckedContinuation<Void, Never>?>(nil)
    let http: OutboundHTTP

    init(store: Store, settings: WebhookSettings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.logger = logger
        http = OutboundHTTP(guardrail: settings.guardrail, timeout: settings.timeout)
    }

    /// Consumer side: one delivery row per matching endpoint (idempotent per event and endpoint).
    func fanOut(_ m: JetStreamMessage) async -> ConsumeOutcome {
        guard let obj = try? JSONSerialization.jsonObject(with: m.data) as? [String: Any],
              let id = obj["id"] as? String, ID.isValid(id), let type = obj["type"] as? String else { return .drop }
        guard let tenant = (obj["tenant_id"] as? String).flatMap({ ID.isValid($0) ? $0 : nil }) else { return .ack }
        let data = obj["data"] as? [String: Any] ?? [:]
        do {
            let inserted = try await store.transaction(.tenant(tenant)) { tx -> Int in
                let endpoints = try await tx.query(
                    "SELECT id, events, min_severity, connection_ids FROM notifier.webhook_endpoints WHERE tenant_id = $1 AND is_active",
                    [tenant])
                var n = 0
                for e in endpoints {
                    guard EventCatalog.matches(try e.stringArray("events"), type) else { continue }
                    if let min = e.optionalString("min_severity"), let sev = data["severity"] as? String,
                       (EventCatalog.severities.firstIndex(of: sev) ?? 0) < (EventCatalog.severities.firstIndex(of: min) ?? 0) { continue }
                    if !e.isNull("connection_ids"), let conn = data["connection_id"] as? String,
                       !(try e.stringArray("connection_ids")).contains(conn) { continue }
                    let payload = try Self.payload(type: type, occurredAt: obj["occurred_at"] as? String, data: data)
                    n += try await tx.execute("""
                        INSERT INTO notifier.webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, payload)
                        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (endpoint_id, event_id) DO NOTHING
                        """, [ID.make(), tenant, try e.string("id"), id, type, payload])
                }
                return n
            }
            if inserted > 0 { poke() }
            return .ack
        } catch {
            logger.warning("webhook fan-out failed; will retry", metadata: ["error": "\(error)"])
            return .retry(after: .seconds(2))
        }
    }

    static func payload(type: String, occurredAt: String?, data: [String: Any]) throws -> String {
        let obj: [String: Any] = ["type": type, "timestamp": occurredAt ?? Timestamp.format(Date()), "data": data]
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    func poke() {
        wake.withLock { c -> CheckedContinuation<Void, Never>? in let w = c; c = nil; return w }?.resume()
    }

    /// Delivery loop: claims due deliveries (leases them for a minute) and sends them concurrently.
    func run() async {
        while !Task.isCancelled {
            do {
                let due = try await claim(limit: 64)
                if !due.isEmpty {
                    await withTaskGroup(of: Void.self) { g in
                        var running = 0
                        for d in due {
                            if running >= 16 { await g.next(); running -= 1 }
                            g.addTask { await self.attempt(d) }
                            running += 1
                        }
                    }
                    continue
                }
            } catch {
                logger.warning("webhook delivery loop failed", metadata: ["error": "\(error)"])
            }
            let timer = Task { [weak self] in
                guard (try? await Task.sleep(for: .milliseconds(500))) != nil else { return }
                self?.poke()
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { c in wake.withLock { $0 = c } }
            } onCancel: { [weak self] in self?.poke() }
            timer.cancel()
        }
    }

    struct Due: Sendable {
        var id: String; var tenantId: String; var endpointId: String; var payload: String; var attempts: Int
        var url: String; var secret: [UInt8]; var previous: [UInt8]?
    }

    func claim(limit: Int) async throws -> [Due] {
        try await store.transaction(.crossTenant) { tx in
            try await tx.query("""
                UPDATE notifier.webhook_deliveries d SET next_attempt_at = now() + interval '2 minutes'
                FROM notifier.webhook_endpoints e
                WHERE d.endpoint_id = e.id AND d.id IN (
                  SELECT id FROM notifier.webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                RETURNING d.id, d.tenant_id, d.endpoint_id, d.payload, d.attempts, e.url, e.secret_sealed,
                  CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret_sealed END AS previous_sealed
                """, [limit]).map { r in
                Due(id: try r.string("id"), tenantId: try r.string("tenant_id"), endpointId: try r.string("endpoint_id"),
                    payload: try r.string("payload"), attempts: try r.int("attempts"), url: try r.string("url"),
                    secret: Array(try r.bytes("secret_sealed")), previous: r.isNull("previous_sealed") ? nil : Array(try r.bytes("previous_sealed")))
            }
        }
    }

    func open(_ sealed: [UInt8]) -> String? { settings.keys.open(sealed).map { String(decoding: $0, as: UTF8.self) } }

    /// One attempt: sign, POST, record, and schedule the next step.
    func attempt(_ d: Due) async {
        let webhookId = "msg_" + d.id.replacingOccurrences(of: "-", with: "")
        let ts = Int(Date().timeIntervalSince1970)
        let body = Array(d.payload.utf8)
        let secrets = [d.secret, d.previous].compactMap { $0 }.compactMap(open)
        let signature = WebhookSignature.sign(id: webhookId, timestamp: ts, body: body, secrets: secrets)
        let headers = ["content-type": "application/json", "webhook-id": webhookId, "webhook-timestamp": String(ts),
                       "webhook-signature": signature]
        let start = ContinuousClock.now
        let http = self.http
        let url = d.url
        let result: Result<OutboundHTTP.Response, any Error> = await Blocking.run { Result { try http.post(url, headers: headers, body: body) } }
        let latency = Int((ContinuousClock.now - start).milliseconds)
        let attempts = d.attempts + 1
        var status: Int? = nil
        var error: String? = nil
        var excerpt: String? = nil
        var outcome: String
        var retryAfter: Int? = nil
        switch result {
        case .success(let r):
            status = r.status
            excerpt = String(r.body.prefix(512))
            if (200..<300).contains(r.status) {
                outcome = "delivered"
            } else if r.status == 429 || r.status >= 500 || r.status == 408 {
                outcome = "retry"
                retryAfter = r.headers["retry-after"].flatMap(Int.init)
            } else {
                outcome = "failed"
                error = "endpoint answered \(r.status)"
            }
        case .failure(let e):
            error = "\(e)"
            outcome = e is NetError && "\(e)".contains("refused") && "\(e)".contains("resolves to") ? "failed" : "retry"
        }
        if outcome == "retry" && attempts >= settings.maxAttempts { outcome = "failed" }
        let delayMs = retryAfter.map { min($0, 3 * 3600) * 1000 }
            ?? Int(Double(settings.backoffMs) * pow(2, Double(attempts - 1)) * Double.random(in: 0.8...1.2))
        let cappedDelay = min(delayMs, 3 * 3600 * 1000)
        do {
            let disabled: Bool = try await store.transaction(.tenant(d.tenantId)) { tx in
                try await tx.execute("""
                    INSERT INTO notifier.webhook_attempts (tenant_id, delivery_id, status, latency_ms, error, response_excerpt)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    """, [d.tenantId, d.id, status, latency, error, excerpt])
                try await tx.execute("""
                    UPDATE notifier.webhook_deliveries SET attempts = $2, last_status = $3, last_error = $4, last_response = $5,
                      last_latency_ms = $6, status = CASE WHEN $7 = 'retry' THEN 'pending' ELSE $7 END,
                      delivered_at = CASE WHEN $7 = 'delivered' THEN now() END,
                      next_attempt_at = now() + make_interval(secs => $8::double precision / 1000)
                    WHERE id = $1
                    """, [d.id, attempts, status, error, excerpt, latency, outcome, cappedDelay])
                if outcome == "delivered" {
                    try await tx.execute("UPDATE notifier.webhook_endpoints SET consecutive_failures = 0 WHERE id = $1", [d.endpointId])
                    return false
                }
                let row = try await tx.one("""
                    UPDATE notifier.webhook_endpoints SET consecutive_failures = consecutive_failures + 1 WHERE id = $1
                    RETURNING consecutive_failures, is_active
                    """, [d.endpointId])
                guard let row, try row.int("consecutive_failures") >= settings.disableAfter, try row.bool("is_active") else { return false }
                try await tx.execute("""
                    UPDATE notifier.webhook_endpoints SET is_active = false, disabled_reason = $2, updated_at = now() WHERE id = $1
                    """, [d.endpointId, "disabled after \(settings.disableAfter) consecutive failed attempts"])
                try await tx.emit("vigil.events.webhook.endpoint_disabled", type: "webhook.endpoint_disabled", tenantId: d.tenantId,
                                  data: ["endpoint_id": d.endpointId, "reason": "consecutive failures"])
                return true
            }
            if disabled { logger.warning("webhook endpoint disabled", metadata: ["endpoint_id": "\(d.endpointId)"]) }
        } catch {
            logger.warning("recording a webhook attempt failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Runs the delivery loop as a Service next to the consumers.
struct WebhookDeliveryService: Service {
    let dispatcher: WebhookDispatcher
    func run() async throws {
        await cancelWhenGracefulShutdown { await dispatcher.run() }
    }
}
