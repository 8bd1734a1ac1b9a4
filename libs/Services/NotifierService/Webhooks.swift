import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceLifecycle
import ServiceRuntime
import Store
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
/// | VIGIL_WEBHOOK_MAX_ATTEMPTS | 20 | about a day with the default backoff (2 s doubling, capped at 3 h) |
/// | VIGIL_WEBHOOK_BACKOFF_MS | 2000 | first retry delay (doubles, ±20 % jitter, capped at 3 h) |
/// | VIGIL_WEBHOOK_DISABLE_AFTER | 50 | consecutive failed attempts before an endpoint is disabled |
/// | VIGIL_WEBHOOK_LEASE_MS | 120000 | a claimed delivery is retried after this if its sender died |
/// | VIGIL_WEBHOOK_CONCURRENCY | 128 | deliveries in flight per replica |
struct WebhookSettings: Sendable {
    var keys: Sodium.BoxKeyPair
    var guardrail: SSRFGuard
    var timeout: Double
    var maxAttempts: Int
    var backoffMs: Int
    var disableAfter: Int
    var leaseMs: Int
    var concurrency: Int

    init(_ r: ConfigReader, logger: Logger) throws {
        let seed = try r.seed("VIGIL_NOTIFIER_SEED")
        if seed.ephemeral { logger.warning("VIGIL_NOTIFIER_SEED is not set: secrets sealed now cannot be opened after a restart") }
        keys = Sodium.BoxKeyPair(seed: seed.bytes)
        guardrail = SSRFGuard(
            allowLoopback: r.bool("VIGIL_WEBHOOK_ALLOW_LOOPBACK", default: false),
            allowPrivate: r.bool("VIGIL_WEBHOOK_ALLOW_PRIVATE", default: false))
        timeout = Double(r.int("VIGIL_WEBHOOK_TIMEOUT_MS", default: 10_000)) / 1000
        maxAttempts = r.int("VIGIL_WEBHOOK_MAX_ATTEMPTS", default: 20)
        backoffMs = r.int("VIGIL_WEBHOOK_BACKOFF_MS", default: 2000)
        disableAfter = r.int("VIGIL_WEBHOOK_DISABLE_AFTER", default: 50)
        leaseMs = r.int("VIGIL_WEBHOOK_LEASE_MS", default: 120_000)
        concurrency = max(1, r.int("VIGIL_WEBHOOK_CONCURRENCY", default: 128))
    }
}

/// Standard Webhooks signing: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
enum WebhookSignature {
    static let secretPrefix = "whsec_"

    static func newSecret() -> String { secretPrefix + Data(Sodium.randomBytes(32)).base64EncodedString() }

    static func key(_ secret: String) -> [UInt8]? {
        guard secret.hasPrefix(secretPrefix), let d = Data(base64Encoded: String(secret.dropFirst(secretPrefix.count))),
            (24...64).contains(d.count)
        else { return nil }
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
        ("connection.created", "A cloud account was connected"),
        ("connection.updated", "A connection was renamed, re-keyed or re-configured"),
        ("connection.deleted", "A connection was deleted"),
        ("scan.completed", "A scan finished (completed, failed or canceled) with its finding counts"),
        ("finding.opened", "A scan found a new problem"),
        ("finding.resolved", "A finding was resolved (a complete scan passed, or a verified fix)"),
        ("finding.reopened", "A resolved finding failed again, or its fix was rolled back"),
        ("finding.suppressed", "A finding was suppressed (by hand or by a suppression rule)"),
        ("finding.risk_accepted", "A finding's risk was accepted"),
        ("remediation.requested", "A fix was requested and waits for approval"),
        ("remediation.approved", "A fix was approved (by a person or by the policy)"),
        ("remediation.rejected", "A fix was rejected"),
        ("remediation.expired", "A fix request expired undecided"),
        ("remediation.applied", "A fix was applied and verified"),
        ("remediation.failed", "A fix failed or did not verify"),
        ("remediation.rolled_back", "A fix was rolled back and the rollback verified"),
        ("remediation.rollback_failed", "A rollback failed or did not verify"),
        ("remediation.credentials_set", "Remediation (write) credentials were stored for a connection"),
        ("remediation.credentials_removed", "Remediation credentials were removed"),
        ("billing.subscription_updated", "The plan or subscription status changed"),
        ("rule.created", "A custom rule was created"),
        ("rule.updated", "A rule was enabled, disabled or had its severity overridden"),
        ("report.generated", "A report was generated"),
        ("notification.channel_created", "A notification channel was added"),
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
    let wake = WakeSignal()
    let http: OutboundHTTP
    let endpointsPresent = PresenceCache()
    var webhooks: WebhookStore { WebhookStore(db: store) }

    init(store: Store, settings: WebhookSettings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.logger = logger
        http = OutboundHTTP(guardrail: settings.guardrail, timeout: settings.timeout)
    }

    /// Whether the workspace has an active endpoint, as of a read that started after the event was received (`PresenceCache`).
    func hasEndpoints(tenant: String, receivedAt: Date) async throws -> Bool {
        let webhooks = self.webhooks
        return try await endpointsPresent.present(tenant: tenant, receivedAt: receivedAt) {
            try await webhooks.hasActiveEndpoint(tenantId: tenant)
        }
    }

    /// Consumer side: one delivery row per matching endpoint (idempotent per event and endpoint).
    func fanOut(_ event: NotifierEvent) async -> ConsumeOutcome {
        await enqueue(tenant: event.tenant, receivedAt: event.message.receivedAt) { subscriptions in
            let data = event.data
            let targets = subscriptions.filter { $0.wants(event.type, data) }
            guard !targets.isEmpty else { return [] }
            let payload = try Self.payload(type: event.type, occurredAt: event.occurredAt, data: data)
            return targets.map { WebhookStore.NewDelivery(endpointId: $0.id, eventId: event.id, eventType: event.type, payload: payload) }
        }
    }

    /// A `finding.batch`: an endpoint with `finding_delivery` `per_finding` gets a delivery per finding
    /// event it wants (its id, type and payload exactly as when each event came alone); one with `batch`
    /// gets one delivery of type `finding.batch` (the batch's id) listing those events in `data.findings`.
    func fanOut(batch: NotifierEvent, _ items: [NotifierEvent]) async -> ConsumeOutcome {
        await enqueue(tenant: batch.tenant, receivedAt: batch.message.receivedAt) { subscriptions in
            var rows: [WebhookStore.NewDelivery] = []
            var payloads: [String: String] = [:]
            for s in subscriptions {
                let wanted = items.filter { s.wants($0.type, $0.data) }
                guard !wanted.isEmpty else { continue }
                if s.findingDelivery == "batch" {
                    let list: [[String: Any]] = wanted.map {
                        ["id": $0.id, "type": $0.type, "timestamp": $0.occurredAt ?? Timestamp.format(Date()), "data": $0.data]
                    }
                    let payload = try Self.payload(
                        type: batch.type, occurredAt: batch.occurredAt, data: ["count": list.count, "findings": list])
                    rows.append(.init(endpointId: s.id, eventId: batch.id, eventType: batch.type, payload: payload))
                } else {
                    for e in wanted {
                        let payload = try payloads[e.id] ?? Self.payload(type: e.type, occurredAt: e.occurredAt, data: e.data)
                        payloads[e.id] = payload
                        rows.append(.init(endpointId: s.id, eventId: e.id, eventType: e.type, payload: payload))
                    }
                }
            }
            return rows
        }
    }

    /// Writes the deliveries `plan` makes of the workspace's active subscriptions, in one statement.
    private func enqueue(
        tenant: String?, receivedAt: Date, _ plan: ([WebhookStore.Subscription]) throws -> [WebhookStore.NewDelivery]
    ) async -> ConsumeOutcome {
        guard let tenant else { return .ack }
        do {
            // Workspaces without endpoints cost one shared read per fetched batch, not a query per event.
            guard try await hasEndpoints(tenant: tenant, receivedAt: receivedAt) else { return .ack }
            // One pipelined round trip (no endpoint wants it); a write only when one does.
            let rows = try plan(try await webhooks.activeSubscriptions(tenantId: tenant))
            guard !rows.isEmpty else { return .ack }
            if try await webhooks.enqueue(tenantId: tenant, rows) > 0 { poke() }
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

    func poke() { wake.poke() }

    /// Sends in flight, and finished attempts waiting to be recorded in bulk.
    let inFlight = Mutex<Int>(0)
    let finished = Mutex<[AttemptResult]>([])

    /// Delivery loop: keeps up to `concurrency` sends going, topping up from the due deliveries
    /// (claimed with a two-minute lease), while a recorder writes finished attempts in bulk.
    func run() async {
        let recorder = Task { await recordLoop() }
        while !Task.isCancelled {
            let capacity = settings.concurrency - inFlight.withLock { $0 }
            if capacity >= min(8, settings.concurrency) {
                do {
                    let due = try await claim(limit: capacity)
                    if !due.isEmpty {
                        inFlight.withLock { $0 += due.count }
                        for d in due {
                            Task {
                                let r = await self.send(d)
                                self.finished.withLock { $0.append(r) }
                                self.inFlight.withLock { $0 -= 1 }
                                self.poke()
                            }
                        }
                        continue
                    }
                } catch {
                    logger.warning("webhook delivery loop failed", metadata: ["error": "\(error)"])
                }
            }
            await wake.wait(timeout: .milliseconds(250))
        }
        // Graceful stop: let in-flight sends finish (bounded) so that their results are recorded
        // and nothing is sent twice after a restart.
        let deadline = ContinuousClock.now + .seconds(15)
        while inFlight.withLock({ $0 }) > 0, ContinuousClock.now < deadline {
            await withCheckedContinuation { c in DispatchQueue.global().asyncAfter(deadline: .now() + 0.02) { c.resume() } }
        }
        recorder.cancel()
        await recorder.value
    }

    /// Writes finished attempts every few milliseconds, one transaction per batch.
    func recordLoop() async {
        while !Task.isCancelled {
            let batch = finished.withLock { f -> [AttemptResult] in
                let b = f
                f.removeAll()
                return b
            }
            if batch.isEmpty {
                try? await Task.sleep(for: .milliseconds(10))
            } else {
                await record(batch)
            }
        }
        let rest = finished.withLock { f -> [AttemptResult] in
            let b = f
            f.removeAll()
            return b
        }
        await record(rest)
    }

    struct Due: Sendable {
        var id: String
        var tenantId: String
        var endpointId: String
        var payload: String
        var attempts: Int
        var url: String
        var secret: [UInt8]
        var previous: [UInt8]?

        /// Columns of `WebhookStore.dueColumns`.
        init(_ r: Row) throws {
            id = try r.string("id")
            tenantId = try r.string("tenant_id")
            endpointId = try r.string("endpoint_id")
            payload = try r.string("payload")
            attempts = try r.int("attempts")
            url = try r.string("url")
            secret = Array(try r.bytes("secret_sealed"))
            previous = r.isNull("previous_sealed") ? nil : Array(try r.bytes("previous_sealed"))
        }
    }

    func claim(limit: Int) async throws -> [Due] { try await webhooks.claim(limit: limit, leaseMs: settings.leaseMs) }

    func open(_ sealed: [UInt8]) -> String? { settings.keys.open(sealed).map { String(decoding: $0, as: UTF8.self) } }

    /// What one attempt produced; recorded in bulk by `record`.
    struct AttemptResult: Sendable {
        var due: Due
        var status: Int?
        var error: String?
        var excerpt: String?
        var latencyMs: Int
        /// delivered, retry or failed
        var outcome: String
        var delayMs: Int
    }

    /// One attempt and its outcome (the caller records it).
    func attempt(_ d: Due) async { await record([await send(d)]) }

    /// Signs and POSTs one delivery; decides what happens next. No database work here.
    func send(_ d: Due) async -> AttemptResult {
        let webhookId = "msg_" + d.id.replacingOccurrences(of: "-", with: "")
        let ts = Int(Date().timeIntervalSince1970)
        let body = Array(d.payload.utf8)
        let secrets = [d.secret, d.previous].compactMap { $0 }.compactMap(open)
        let signature = WebhookSignature.sign(id: webhookId, timestamp: ts, body: body, secrets: secrets)
        let headers = [
            "content-type": "application/json", "webhook-id": webhookId, "webhook-timestamp": String(ts),
            "webhook-signature": signature,
        ]
        let start = ContinuousClock.now
        let http = self.http
        let url = d.url
        let result: Result<OutboundHTTP.Response, any Error> = await Blocking.run { Result { try http.post(url, headers: headers, body: body) } }
        let latency = Int((ContinuousClock.now - start).milliseconds)
        let attempts = d.attempts + 1
        var r = AttemptResult(due: d, status: nil, error: nil, excerpt: nil, latencyMs: latency, outcome: "retry", delayMs: 0)
        var retryAfter: Int? = nil
        switch result {
        case .success(let resp):
            r.status = resp.status
            r.excerpt = String(resp.body.prefix(512))
            if (200..<300).contains(resp.status) {
                r.outcome = "delivered"
            } else if resp.status == 429 || resp.status >= 500 || resp.status == 408 {
                retryAfter = resp.headers["retry-after"].flatMap(Int.init)
            } else {
                r.outcome = "failed"
                r.error = "endpoint answered \(resp.status)"
            }
        case .failure(let e):
            r.error = "\(e)"
            // An address the guard refuses (e.g. DNS now points inside) will not get better.
            if "\(e)".contains("; refused") { r.outcome = "failed" }
        }
        if r.outcome == "retry" && attempts >= settings.maxAttempts { r.outcome = "failed" }
        let delayMs =
            retryAfter.map { min($0, 3 * 3600) * 1000 }
            ?? Int(Double(settings.backoffMs) * pow(2, Double(attempts - 1)) * Double.random(in: 0.8...1.2))
        r.delayMs = min(delayMs, 3 * 3600 * 1000)
        return r
    }

    /// Records a batch of attempts in one transaction: attempt log, delivery state, endpoint health.
    func record(_ results: [AttemptResult]) async {
        guard !results.isEmpty else { return }
        func col(_ f: (AttemptResult) -> String?) -> ArrayParameter { ArrayParameter(results.map(f)) }
        // Per endpoint: reset on any success in the batch, else add the failures.
        var health: [String: (reset: Bool, failures: Int, tenant: String)] = [:]
        for r in results {
            var h = health[r.due.endpointId] ?? (false, 0, r.due.tenantId)
            if r.outcome == "delivered" { h.reset = true } else { h.failures += 1 }
            health[r.due.endpointId] = h
        }
        let endpointIds = Array(health.keys)
        do {
            let disabled: [(String, String)] = try await store.transaction(.crossTenant) { tx in
                try await webhooks.recordAttempts(
                    tx,
                    .init(
                        tenantIds: col { $0.due.tenantId }, deliveryIds: col { $0.due.id }, statuses: col { $0.status.map(String.init) },
                        latencies: col { String($0.latencyMs) }, errors: col { $0.error }, excerpts: col { $0.excerpt },
                        outcomes: col { $0.outcome }, delays: col { String($0.delayMs) }))
                let rows = try await webhooks.updateHealth(
                    tx, endpointIds: endpointIds, reset: endpointIds.map { health[$0]!.reset },
                    failures: endpointIds.map { health[$0]!.reset ? 0 : health[$0]!.failures })
                var out: [(String, String)] = []
                for row in rows where row.consecutiveFailures >= settings.disableAfter && row.isActive {
                    let (id, tenant) = (row.id, row.tenantId)
                    try await webhooks.disable(tx, id: id, reason: "disabled after \(settings.disableAfter) consecutive failed attempts")
                    try await tx.emit(
                        Events.webhookEndpointDisabled, tenantId: tenant,
                        data: ["endpoint_id": id, "reason": "consecutive failures"])
                    out.append((id, tenant))
                }
                return out
            }
            for (id, _) in disabled { logger.warning("webhook endpoint disabled", metadata: ["endpoint_id": "\(id)"]) }
        } catch {
            logger.warning("recording webhook attempts failed", metadata: ["error": "\(error)"])
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
