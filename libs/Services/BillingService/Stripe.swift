import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

struct StripeSettings: Sendable {
    var secretKey: String
    var apiBase: String
    /// "plan:interval" → Stripe price id.
    var prices: [String: String]

    func plan(forPrice id: String) -> (plan: String, interval: String)? {
        guard let key = prices.first(where: { $0.value == id })?.key else { return nil }
        let parts = key.split(separator: ":").map(String.init)
        return (parts[0], parts[1])
    }
}

/// Stripe's REST API over our HTTP client: form-encoded requests, JSON replies.
struct StripeClient: Sendable {
    let settings: StripeSettings
    /// The API base is the operator's configuration (Stripe, or a local emulator), not user input: calls go
    /// over pooled keep-alive connections.
    var http: PooledHTTP { PooledHTTP(timeout: .seconds(15)) }

    static func form(_ params: [(String, String)]) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        return params.map {
            "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.0)"
                + "=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)"
        }
        .joined(separator: "&")
    }

    /// One call; Stripe's error (`{"error": {"message", "type", "code"}}`) becomes a 502 naming it.
    func call(_ method: String, _ path: String, _ params: [(String, String)] = [], idempotencyKey: String? = nil) async throws -> [String: Any] {
        var headers = ["Authorization": "Bearer \(settings.secretKey)", "Stripe-Version": "2024-06-20"]
        var url = settings.apiBase + path
        var body: [UInt8] = []
        if method == "GET" {
            if !params.isEmpty { url += "?" + Self.form(params) }
        } else {
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = Array(Self.form(params).utf8)
        }
        if let idempotencyKey { headers["Idempotency-Key"] = idempotencyKey }
        let r: OutboundHTTP.Response
        do {
            r = try await http.send(method: method, url: url, headers: headers, body: body, maxBody: 4 << 20)
        } catch {
            throw ServiceError(status: 502, error: "payment_provider_unavailable", message: "the payment provider could not be reached")
        }
        let obj = (try? JSONSerialization.jsonObject(with: Data(r.body.utf8))) as? [String: Any] ?? [:]
        guard (200..<300).contains(r.status) else {
            let err = obj["error"] as? [String: Any]
            throw ServiceError(
                status: 502, error: "payment_provider_error",
                message: "the payment provider refused the request: \(err?["message"] as? String ?? "HTTP \(r.status)")")
        }
        return obj
    }
}

extension StripeClient {
    /// Moves a subscription's (single) item to another price; Stripe prorates by default (create_prorations).
    func setPrice(subscriptionId: String, price: String, plan: String) async throws {
        let sub = try await call("GET", "/v1/subscriptions/\(subscriptionId)")
        let item = (((sub["items"] as? [String: Any])?["data"] as? [[String: Any]])?.first?["id"] as? String) ?? ""
        _ = try await call(
            "POST", "/v1/subscriptions/\(subscriptionId)", [("items[0][id]", item), ("items[0][plan]", price), ("metadata[plan]", plan)])
    }
}

struct StripeWebhookRequest: Codable, Sendable {
    var rawBase64: String
    var headers: [String: String]
}
struct WebhookReply: Codable, Sendable {
    var received: Bool
    var duplicate: Bool
    var type: String
}

/// `POST /billing/webhooks/stripe`: the raw body and `Stripe-Signature` (t=…, v1=… HMAC-SHA256 of
/// "t.body" with the endpoint secret), checked in constant time within the tolerance; each event is
/// processed once by its id.
struct WebhookHandler: Sendable {
    let subs: Subscriptions
    let stripe: StripeClient?
    let logger: Logger

    func register(on r: ServiceResponder) {
        r.add(Endpoint<StripeWebhookRequest, WebhookReply>(Subjects.Billing.webhookStripe), handler: receive)
    }

    static func verify(payload: [UInt8], header: String?, secret: String, tolerance: Int, now: Date = Date()) throws {
        guard let header, !header.isEmpty else {
            throw ServiceError(status: 400, error: "invalid_signature", message: "the Stripe-Signature header is missing")
        }
        var timestamp: Int? = nil
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { timestamp = Int(kv[1]) } else if kv[0] == "v1" { signatures.append(kv[1].lowercased()) }
        }
        guard let timestamp, !signatures.isEmpty else {
            throw ServiceError(status: 400, error: "invalid_signature", message: "the Stripe-Signature header has no timestamp or v1 signature")
        }
        let expected = Sodium.hex(Sodium.hmacSHA256(key: Array(secret.utf8), message: Array("\(timestamp).".utf8) + payload))
        guard signatures.contains(where: { Sodium.constantTimeEqual($0, expected) }) else {
            throw ServiceError(status: 400, error: "invalid_signature", message: "the webhook signature does not match")
        }
        guard abs(Int(now.timeIntervalSince1970) - timestamp) <= tolerance else {
            throw ServiceError(status: 400, error: "stale_signature", message: "the webhook timestamp is outside the \(tolerance) s tolerance")
        }
    }

    @Sendable func receive(_ req: StripeWebhookRequest, _ ctx: CallContext) async throws -> WebhookReply {
        guard let secret = subs.settings.webhookSecret else {
            throw ServiceError(
                status: 400, error: "webhooks_not_configured", message: "Stripe webhooks are not configured (VIGIL_STRIPE_WEBHOOK_SECRET)")
        }
        guard let raw = Data(base64Encoded: req.rawBase64) else { throw ServiceError.badRequest("body is missing") }
        try Self.verify(payload: Array(raw), header: req.headers["stripe-signature"], secret: secret, tolerance: subs.settings.webhookTolerance)
        guard let event = (try? JSONSerialization.jsonObject(with: raw)) as? [String: Any], let id = event["id"] as? String,
            let type = event["type"] as? String, let object = (event["data"] as? [String: Any])?["object"] as? [String: Any]
        else {
            throw ServiceError.badRequest("the body is not a Stripe event", code: "invalid_event")
        }
        guard let tenant = try await tenant(for: object) else {
            // Not ours (another product on the same Stripe account): acknowledged, nothing to do.
            let fresh = try await ProcessedEventStore(db: subs.store).claim(id: id, tenantId: nil, source: "stripe", type: type)
            return WebhookReply(received: true, duplicate: !fresh, type: type)
        }
        let fresh = try await subs.store.transaction(.tenant(tenant)) { tx -> Bool in
            guard try await ProcessedEventStore(db: subs.store).claim(tx, id: id, tenantId: tenant, source: "stripe", type: type) else {
                return false
            }
            try await apply(tx, tenant: tenant, type: type, object: object)
            return true
        }
        return WebhookReply(received: true, duplicate: !fresh, type: type)
    }

    /// The workspace an event is about: `client_reference_id` / `metadata.tenant_id`, else the customer.
    func tenant(for o: [String: Any]) async throws -> String? {
        for candidate in [o["client_reference_id"] as? String, (o["metadata"] as? [String: Any])?["tenant_id"] as? String] {
            if let c = candidate, ID.isValid(c) { return c.lowercased() }
        }
        let customer = (o["customer"] as? String) ?? ((o["object"] as? String) == "customer" ? o["id"] as? String : nil)
        guard let customer else { return nil }
        return try await subs.rows.tenant(forCustomer: customer)
    }

    static let statusMap = [
        "active": "active", "trialing": "trialing", "past_due": "past_due", "unpaid": "past_due", "canceled": "canceled",
        "incomplete": "incomplete", "incomplete_expired": "canceled", "paused": "past_due",
    ]

    func planOf(_ sub: [String: Any]) -> (String, String)? {
        let items = ((sub["items"] as? [String: Any])?["data"] as? [[String: Any]]) ?? []
        for item in items {
            for key in ["price", "plan"] {
                if let p = item[key] as? [String: Any], let id = p["id"] as? String, let m = stripe?.settings.plan(forPrice: id) { return m }
            }
        }
        if let m = (sub["metadata"] as? [String: Any])?["plan"] as? String, Plans.byId[m] != nil { return (m, "month") }
        return nil
    }

    func apply(_ tx: Transaction, tenant: String, type: String, object o: [String: Any]) async throws {
        let before = try await subs.load(tx, tenant, lock: true)
        func date(_ key: String) -> Date? { (o[key] as? NSNumber).map { Date(timeIntervalSince1970: $0.doubleValue) } }
        switch type {
        case "checkout.session.completed":
            let plan = ((o["metadata"] as? [String: Any])?["plan"] as? String).flatMap { Plans.byId[$0] != nil ? $0 : nil } ?? before.plan
            let interval = ((o["metadata"] as? [String: Any])?["interval"] as? String) ?? before.interval
            try await subs.rows.stripeCheckoutCompleted(
                tx, tenantId: tenant, customer: o["customer"] as? String, subscription: o["subscription"] as? String, plan: plan,
                interval: interval)
        case "customer.subscription.created", "customer.subscription.updated":
            let status = Self.statusMap[o["status"] as? String ?? ""] ?? before.status
            let (plan, interval) = planOf(o) ?? (before.plan, before.interval)
            try await subs.rows.stripeSubscriptionChanged(
                tx, tenantId: tenant,
                .init(
                    customer: o["customer"] as? String, id: o["id"] as? String, plan: plan, interval: interval, status: status,
                    periodStart: date("current_period_start"), periodEnd: date("current_period_end"),
                    cancelAtPeriodEnd: (o["cancel_at_period_end"] as? Bool) ?? false, trialEnd: date("trial_end")))
        case "customer.subscription.deleted":
            try await subs.rows.stripeSubscriptionDeleted(tx, tenantId: tenant)
        case "invoice.paid", "invoice.payment_succeeded":
            try await subs.rows.stripeInvoicePaid(tx, tenantId: tenant)
        case "invoice.payment_failed":
            try await subs.rows.stripePaymentFailed(tx, tenantId: tenant)
        default:
            return
        }
        try await subs.changed(tx, before, change: "stripe:" + type, actor: "stripe")
    }
}
