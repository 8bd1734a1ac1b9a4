import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

struct ChannelRequest: Codable, Sendable {
    var channelId: String?
    var name: String?
    var method: String?
    var config: [String: JSONValueLite]?
    var enabled: Bool?
    var events: [String]?
    var minSeverity: String?
}
struct ChannelView: Codable, Sendable {
    var id: String
    var name: String
    var method: String
    var config: [String: String]
    var enabled: Bool
    var events: [String]
    var minSeverity: String?
    var createdAt: Date
    var updatedAt: Date
}
struct ChannelTestRequest: Codable, Sendable { var channelId: String }
struct ChannelTestReply: Codable, Sendable {
    var ok: Bool
    var detail: String
}
struct NotificationPolicy: Codable, Sendable {
    /// `digest`: one message per completed scan instead of one per finding; `every_event`: each event.
    var delivery: String
    /// `scan_complete` (every completed scan) or `waste_only` (only scans with cost findings).
    var notificationTriggerMode: String
    var updatedAt: Date?
}
struct PolicyPatch: Codable, Sendable {
    var delivery: String?
    var notificationTriggerMode: String?
}

/// A string or a list of strings (channel config values).
enum JSONValueLite: Codable, Sendable {
    case string(String)
    case list([String])
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { self = .string(s) } else { self = .list(try c.decode([String].self)) }
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .list(let l): try c.encode(l)
        }
    }
    var strings: [String] {
        switch self {
        case .string(let s): [s]
        case .list(let l): l
        }
    }
}

/// Notification channels (email, Slack, plain webhook) with per-channel event subscriptions, a
/// workspace policy (digest or every event), test sends, and the dispatcher that consumes events.
struct ChannelService: Sendable {
    let store: Store
    let keys: Sodium.BoxKeyPair
    let http: OutboundHTTP
    let guardrail: SSRFGuard
    let logger: Logger
    let channelsPresent = PresenceCache()
    var channels: ChannelStore { ChannelStore(db: store) }
    static let methods = ["email", "slack", "webhook"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<PageRequest, Page<ChannelView>>(Subjects.Notifier.channelList), handler: list)
        r.add(Endpoint<ChannelRequest, ChannelView>(Subjects.Notifier.channelCreate), handler: create)
        r.add(Endpoint<ChannelRequest, ChannelView>(Subjects.Notifier.channelUpdate), handler: update)
        r.add(Endpoint<ChannelTestRequest, Empty>(Subjects.Notifier.channelDelete), handler: delete)
        r.add(Endpoint<ChannelTestRequest, ChannelTestReply>(Subjects.Notifier.channelTest), handler: test)
        r.add(Endpoint<Empty, NotificationPolicy>(Subjects.Notifier.policyGet)) { _, p, ctx in
            return try await loadPolicy(p.tenantId)
        }
        r.add(Endpoint<PolicyPatch, NotificationPolicy>(Subjects.Notifier.policyUpdate), handler: updatePolicy)
    }

    // MARK: configuration (secrets such as Slack URLs are sealed and shown masked)

    /// Validates a channel's config and returns (public config, sealed secret config).
    func prepare(method: String, config: [String: JSONValueLite]) async throws -> ([String: String], Data) {
        switch method {
        case "email":
            let to = config["to"]?.strings ?? []
            guard !to.isEmpty, to.count <= 20 else { throw ServiceError.validation("body.config.to", "1 to 20 email addresses") }
            let clean = try to.enumerated().map { try Validate.email($0.element, path: "body.config.to.\($0.offset)") }
            let secret = try JSONEncoder().encode(["to": clean.joined(separator: ",")])
            return (["to": clean.joined(separator: ", ")], Data(Sodium.seal(Array(secret), to: keys.publicKey)))
        case "slack", "webhook":
            let field = method == "slack" ? "webhook_url" : "url"
            guard let url = config[field]?.strings.first else { throw ServiceError.validation("body.config.\(field)", "field required") }
            let g = guardrail
            do { _ = try await Blocking.run { try g.check(url) } } catch { throw ServiceError.validation("body.config.\(field)", "\(error)") }
            let secret = try JSONEncoder().encode(["url": url])
            let masked = (try? SSRFGuard.parse(url)).map { "\($0.0.scheme ?? "https")://\($0.1)/…" } ?? "…"
            return ([field: masked], Data(Sodium.seal(Array(secret), to: keys.publicKey)))
        default:
            throw ServiceError.validation("body.method", "must be one of \(Self.methods.joined(separator: ", "))")
        }
    }

    func validateSubscription(_ events: [String]?, _ minSeverity: String?) throws {
        if let e = events, e.isEmpty || e.count > 50 || e.contains(where: { $0.isEmpty || $0.count > 100 }) {
            throw ServiceError.validation("body.events", "must list 1 to 50 event types or patterns")
        }
        if let s = minSeverity, !EventCatalog.severities.contains(s) {
            throw ServiceError.validation("body.min_severity", "must be one of \(EventCatalog.severities.joined(separator: ", "))")
        }
    }

    @Sendable func create(_ req: ChannelRequest, _ p: Principal, _ ctx: CallContext) async throws -> ChannelView {
        let name = try Validate.text(req.name ?? "", path: "body.name", max: 100)
        guard let method = req.method else { throw ServiceError.validation("body.method", "field required") }
        try validateSubscription(req.events, req.minSeverity)
        let (config, sealed) = try await prepare(method: method, config: req.config ?? [:])
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let v = try await channels.insert(
                tx,
                .init(
                    id: ID.make(), tenantId: p.tenantId, name: name, method: method, config: config, sealedConfig: sealed,
                    enabled: req.enabled ?? true, events: req.events ?? ["*"], minSeverity: req.minSeverity))
            try await tx.emit(
                Events.notificationChannelCreated, tenantId: p.tenantId,
                data: ["channel_id": v.id, "method": method, "actor": p.actorId])
            return v
        }
    }

    @Sendable func update(_ req: ChannelRequest, _ p: Principal, _ ctx: CallContext) async throws -> ChannelView {
        let id = try Validate.id(req.channelId ?? "", "channel")
        let name = try req.name.map { try Validate.text($0, path: "body.name", max: 100) }
        try validateSubscription(req.events, req.minSeverity)
        var prepared: ([String: String], Data)? = nil
        if let config = req.config {
            guard let method = try await channels.method(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("channel") }
            prepared = try await prepare(method: method, config: config)
        }
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let view = try await channels.update(
                    tx, id: id, tenantId: p.tenantId,
                    .init(
                        name: name, enabled: req.enabled, events: req.events, minSeverity: req.minSeverity, config: prepared?.0,
                        sealedConfig: prepared?.1))
            else { throw ServiceError.notFound("channel") }
            return view
        }
    }

    @Sendable func list(_ req: PageRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ChannelView> {
        return try await channels.list(try Pagination(req), tenantId: p.tenantId)
    }

    @Sendable func delete(_ req: ChannelTestRequest, _ p: Principal, _ ctx: CallContext) async throws -> Empty {
        let id = try Validate.id(req.channelId, "channel")
        guard try await channels.delete(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("channel") }
        return Empty()
    }

    @Sendable func test(_ req: ChannelTestRequest, _ p: Principal, _ ctx: CallContext) async throws -> ChannelTestReply {
        let id = try Validate.id(req.channelId, "channel")
        guard let channel = try await channels.find(id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("channel") }
        let message = ChannelMessage(title: "Vigil test notification", lines: ["This channel is set up correctly."], severity: nil)
        do {
            try await send(
                message, method: channel.method, sealed: channel.sealedConfig, tenantId: p.tenantId, eventId: ID.make())
            return ChannelTestReply(ok: true, detail: "sent")
        } catch {
            return ChannelTestReply(ok: false, detail: "\(error)")
        }
    }

    func loadPolicy(_ tenantId: String) async throws -> NotificationPolicy {
        try await channels.policy(tenantId: tenantId)
            ?? NotificationPolicy(delivery: "digest", notificationTriggerMode: "scan_complete", updatedAt: nil)
    }

    @Sendable func updatePolicy(_ req: PolicyPatch, _ p: Principal, _ ctx: CallContext) async throws -> NotificationPolicy {
        if let d = req.delivery, !["digest", "every_event"].contains(d) {
            throw ServiceError.validation("body.delivery", "must be digest or every_event")
        }
        if let m = req.notificationTriggerMode, !["scan_complete", "waste_only"].contains(m) {
            throw ServiceError.validation("body.notification_trigger_mode", "must be scan_complete or waste_only")
        }
        let cur = try await loadPolicy(p.tenantId)
        try await channels.savePolicy(
            tenantId: p.tenantId, delivery: req.delivery ?? cur.delivery,
            triggerMode: req.notificationTriggerMode ?? cur.notificationTriggerMode)
        return try await loadPolicy(p.tenantId)
    }

    // MARK: dispatch

    struct ChannelMessage: Sendable {
        var title: String
        var lines: [String]
        var severity: String?
    }

    /// The human summary of an event, or nil when the policy says not to notify for it.
    static func message(type: String, data: [String: Any], policy: NotificationPolicy) -> ChannelMessage? {
        if type == "scan.completed" {
            let counts = data["findings_count"] as? [String: Any] ?? [:]
            let total = counts.values.compactMap { $0 as? Int }.reduce(0, +)
            let savings = data["estimated_monthly_savings"] as? Double ?? 0
            if policy.notificationTriggerMode == "waste_only" && savings <= 0 { return nil }
            let order = ["critical", "high", "medium", "low", "info"]
            let breakdown = order.compactMap { k in (counts[k] as? Int).map { "\(k): \($0)" } }.joined(separator: ", ")
            var lines = [
                "Scan \(data["scan_id"] as? String ?? "") of connection \(data["connection_id"] as? String ?? "") completed.",
                "\(total) findings (\(breakdown.isEmpty ? "none" : breakdown)).",
            ]
            if savings > 0 { lines.append(String(format: "Estimated monthly savings: $%.2f", savings)) }
            let worst = order.first { (counts[$0] as? Int ?? 0) > 0 }
            return ChannelMessage(title: "Vigil scan completed", lines: lines, severity: worst)
        }
        if policy.delivery == "digest" && type.hasPrefix("finding.") { return nil }
        let detail = data.filter { !["actor"].contains($0.key) }.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
        return ChannelMessage(title: "Vigil: \(type)", lines: detail, severity: data["severity"] as? String)
    }

    /// Whether the workspace has an enabled channel, as of a read that started after the event was received (`PresenceCache`).
    func hasChannels(tenant: String, receivedAt: Date) async throws -> Bool {
        let channels = self.channels
        return try await channelsPresent.present(tenant: tenant, receivedAt: receivedAt) {
            try await channels.hasEnabledChannel(tenantId: tenant)
        }
    }

    func handle(_ e: NotifierEvent) async -> ConsumeOutcome { await handle(batch: [e]) }

    /// Sends events of one workspace (a `finding.batch`'s items, or one event) to the channels that want
    /// them and have not had them yet. The policy and the channels each event is owed are read once for
    /// all of them; under the default digest policy finding events need no read beyond the policy.
    func handle(batch events: [NotifierEvent]) async -> ConsumeOutcome {
        guard let first = events.first, let tenant = first.tenant else { return .ack }
        do {
            guard try await hasChannels(tenant: tenant, receivedAt: first.message.receivedAt) else { return .ack }
            let policy = try await loadPolicy(tenant)
            let messages = events.compactMap { e in
                e.tenant == tenant ? Self.message(type: e.type, data: e.data, policy: policy).map { (e, $0) } : nil
            }
            guard !messages.isEmpty else { return .ack }
            let owed = try await channels.pending(tenantId: tenant, eventIds: messages.map { $0.0.id })
            var failed = false
            for (e, message) in messages {
                for c in owed[e.id] ?? [] {
                    guard EventCatalog.matches(c.events, e.type) else { continue }
                    if let min = c.minSeverity,
                        (EventCatalog.severities.firstIndex(of: message.severity ?? "info") ?? 0)
                            < (EventCatalog.severities.firstIndex(of: min) ?? 0)
                    {
                        continue
                    }
                    do {
                        try await send(message, method: c.method, sealed: c.sealedConfig, tenantId: tenant, eventId: e.id)
                        try await channels.recordSend(tenantId: tenant, channelId: c.id, eventId: e.id)
                    } catch {
                        failed = true
                        logger.warning("channel send failed", metadata: ["channel_id": "\(c.id)", "error": "\(error)"])
                    }
                }
            }
            return failed ? .retry(after: StreamConsumer.backoff(attempt: first.message.deliveryCount, cap: .seconds(1800))) : .ack
        } catch {
            return .retry(after: .seconds(2))
        }
    }

    func send(_ message: ChannelMessage, method: String, sealed: [UInt8], tenantId: String, eventId: String) async throws {
        guard let plain = keys.open(sealed), let config = try? JSONDecoder().decode([String: String].self, from: Data(plain)) else {
            throw NetError("channel configuration cannot be opened (sealing key changed?)")
        }
        switch method {
        case "email":
            let text = message.lines.joined(separator: "\n")
            try await store.transaction(.tenant(tenantId)) { tx in
                for to in (config["to"] ?? "").split(separator: ",") {
                    try await tx.emit(
                        Jobs.emailSend, type: "email.requested", tenantId: tenantId,
                        data: EmailRequest(
                            to: String(to), template: "notification", subject: message.title, text: text,
                            values: ["event_id": eventId]))
                }
            }
        default:
            let url = config["url"] ?? ""
            let body: [String: Any] =
                method == "slack"
                ? [
                    "text": "\(message.title)\n" + message.lines.joined(separator: "\n"),
                    "blocks": [
                        ["type": "header", "text": ["type": "plain_text", "text": message.title]],
                        ["type": "section", "text": ["type": "mrkdwn", "text": message.lines.map { "• \($0)" }.joined(separator: "\n")]],
                    ],
                ]
                : ["title": message.title, "lines": message.lines, "severity": message.severity ?? NSNull(), "event_id": eventId]
            let bytes = Array(try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]))
            let http = self.http
            let r = try await Blocking.run { try http.post(url, headers: ["content-type": "application/json"], body: bytes) }
            guard (200..<300).contains(r.status) else { throw NetError("\(method) endpoint answered \(r.status)") }
        }
    }
}
