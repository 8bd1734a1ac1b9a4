import Bus
import Contracts
import Foundation
import Logging
import Net
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// Email settings (email delivery is off while VIGIL_SMTP_HOST is unset).
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_SMTP_HOST / VIGIL_SMTP_PORT | unset / 587 | SMTP submission server |
/// | VIGIL_SMTP_SECURITY | starttls | starttls, tls (implicit) or none |
/// | VIGIL_SMTP_USERNAME / VIGIL_SMTP_PASSWORD | unset | AUTH PLAIN credentials (never sent without TLS) |
/// | VIGIL_SMTP_FROM | Vigil <no-reply@vigil.local> | sender |
/// | VIGIL_SMTP_VERIFY_TLS | true | verify the server certificate |
/// | VIGIL_NOTIFIER_EVENT_BATCH | 128 | events fetched at once (and handled concurrently) from `vigil.events.>` |
public enum NotifierService {
    public static let definition = ServiceDefinition(
        name: "notifier", description: "Webhooks, email and the audit log", schema: "notifier",
        migrations: NotifierSchema.migrations
    ) { ctx in
        let store = ctx.store!
        let r = ctx.config.reader
        var services: [any Service] = []

        let audit = AuditRecorder(store: store, logger: ctx.logger)
        let webhookSettings = try WebhookSettings(r, logger: ctx.logger)
        let dispatcher = WebhookDispatcher(store: store, settings: webhookSettings, logger: ctx.logger)
        services.append(WebhookDeliveryService(dispatcher: dispatcher))

        if let host = r.optional("VIGIL_SMTP_HOST") {
            let smtp = SMTPClient(
                settings: SMTPSettings(
                    host: host, port: r.int("VIGIL_SMTP_PORT", default: 587), security: r.string("VIGIL_SMTP_SECURITY", default: "starttls"),
                    username: r.optional("VIGIL_SMTP_USERNAME"), password: r.optional("VIGIL_SMTP_PASSWORD"),
                    from: r.string("VIGIL_SMTP_FROM", default: "Vigil <no-reply@vigil.local>"),
                    verifyTLS: r.bool("VIGIL_SMTP_VERIFY_TLS", default: true)))
            var mailCfg = JetStream.ConsumerConfig(durable: "notifier-email", filterSubject: Jobs.emailSend)
            mailCfg.maxDeliver = 12
            mailCfg.ackWait = .seconds(60)
            let sender = EmailSender(store: store, smtp: smtp, logger: ctx.logger)
            services.append(
                StreamConsumer(
                    jetStream: ctx.jetStream, stream: Streams.jobs, config: mailCfg, logger: ctx.logger,
                    handler: sender.handle))
        } else {
            ctx.logger.warning("VIGIL_SMTP_HOST is not set: requested emails stay queued in VIGIL_JOBS until it is")
        }
        for case let c as StreamConsumer in services { try await c.prepare() }
        NotifierHandlers(store: store, dispatcher: dispatcher).register(on: ctx.responder)
        let channels = ChannelService(
            store: store, keys: webhookSettings.keys,
            http: OutboundHTTP(guardrail: webhookSettings.guardrail, timeout: webhookSettings.timeout),
            guardrail: webhookSettings.guardrail, logger: ctx.logger)
        channels.register(on: ctx.responder)
        // One consumer of the event stream for the whole service: each event is fetched, parsed and
        // acknowledged once, then fanned out to webhooks, channels and the audit log (each idempotent
        // by event id, so a retry for one of them repeats nothing in the others).
        let router = NotifierEventRouter(audit: audit, webhooks: dispatcher, channels: channels, logger: ctx.logger)
        var eventsCfg = JetStream.ConsumerConfig(durable: "notifier-events", filterSubject: Events.all)
        eventsCfg.maxDeliver = 20
        let eventsConsumer = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.events, config: eventsCfg,
            batch: max(1, r.int("VIGIL_NOTIFIER_EVENT_BATCH", default: 128)), triage: router.triage,
            logger: ctx.logger, handler: router.handle)
        try await eventsConsumer.prepare()
        for old in ["notifier-audit", "notifier-webhooks", "notifier-channels"] {  // one consumer each before
            try await ctx.jetStream.deleteConsumer(stream: Streams.events, durable: old)
        }
        services.append(eventsConsumer)
        services.append(try OpsFailureResponder.service(bus: ctx.bus, dispatcher: dispatcher))
        ctx.responder.add(
            Endpoint<ContactRequest, ContactReply>(Subjects.Notifier.contactSubmit),
            handler: ContactHandler(store: store, reader: r).submit)
        return services
    }
}

/// An event from `vigil.events.>` for every notifier part. The envelope's head is read at once (`JSONHead`);
/// `data` as a whole only when a part needs it, so events nobody wants (a scan's `finding.opened`
/// in a workspace without endpoints or channels) cost a small decode and an ack.
final class NotifierEvent {
    let message: JetStreamMessage
    let id: String
    let type: String
    let tenant: String?
    let occurredAt: String?
    /// `data.actor` (or `data.user_id`) when not empty.
    let actor: String?
    lazy var data: [String: Any] = {
        (try? JSONSerialization.jsonObject(with: message.data) as? [String: Any])?["data"] as? [String: Any] ?? [:]
    }()

    init?(_ m: JetStreamMessage) {
        guard
            let (head, data) = JSONHead.read(
                m.data, keys: ["id", "type", "tenant_id", "occurred_at"], nested: "data",
                nestedKeys: ["actor", "user_id"]),
            let id = head[0], ID.isValid(id), let type = head[1]
        else { return nil }
        message = m
        self.id = id
        self.type = type
        tenant = head[2].flatMap { ID.isValid($0) ? $0 : nil }
        occurredAt = head[3]
        actor = data[0].flatMap { $0.isEmpty ? nil : $0 } ?? data[1]
    }

    /// One item of a `finding.batch`: the event as it would have come alone, in the batch's message
    /// (its headers, delivery count and receipt time). Nil when the item is not an event of the batch's workspace.
    private init?(item: [String: Any], of batch: NotifierEvent) {
        guard let id = item["id"] as? String, ID.isValid(id), let type = item["type"] as? String, type.hasPrefix("finding."),
            let data = item["data"] as? [String: Any], (item["tenant_id"] as? String) == batch.tenant
        else { return nil }
        message = batch.message
        self.id = id
        self.type = type
        tenant = batch.tenant
        occurredAt = item["occurred_at"] as? String
        actor = (data["actor"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        self.data = data
    }

    var isFindingBatch: Bool { type == Events.findingBatch.type }

    /// The events a `finding.batch` carries (`data.findings[]`), oldest first; malformed items are left out.
    func items() -> [NotifierEvent] {
        (data["findings"] as? [[String: Any]] ?? []).compactMap { NotifierEvent(item: $0, of: self) }
    }
}

/// Hands each event to the webhook fan-out, the channels and the audit log; the message is retried
/// (soonest asked delay) if any of them asks, acknowledged otherwise.
struct NotifierEventRouter: Sendable {
    let audit: AuditRecorder
    let webhooks: WebhookDispatcher
    let channels: ChannelService
    let logger: Logger

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        // Result batches published as events by an earlier version: bulk data for the findings service.
        if m.subject == Streams.legacyScanResults { return .ack }
        guard let event = NotifierEvent(m) else {
            logger.error("undecodable event dropped", metadata: ["subject": "\(m.subject)"])
            return .drop
        }
        var outcomes: [ConsumeOutcome]
        if event.isFindingBatch {
            // Webhooks see the batch whole (one delivery per finding or per batch, by endpoint); channels
            // and the audit log see each finding event as it would have come alone.
            let items = event.items()
            outcomes = [await webhooks.fanOut(batch: event, items), await channels.handle(batch: items)]
            for item in items { outcomes.append(await audit.handle(item)) }
        } else {
            outcomes = [await webhooks.fanOut(event), await channels.handle(event), await audit.handle(event)]
        }
        var retry: Duration?
        for outcome in outcomes {
            if case .retry(let after) = outcome { retry = min(retry ?? after, after) }
        }
        return retry.map { .retry(after: $0) } ?? .ack
    }

    /// Settles at once, without a task each, the events of a fetched batch that nothing wants: ones
    /// the audit log skips (a scan's lifecycle changes) in a workspace without webhook endpoints or
    /// channels, such as a scan's burst of `finding.opened`. One presence answer per workspace per
    /// batch; everything else, and anything the answers are unsure of, goes to `handle`.
    @Sendable func triage(_ batch: [JetStreamMessage]) async -> [JetStreamMessage] {
        var rest: [JetStreamMessage] = []
        var quiet: [String: [JetStreamMessage]] = [:]
        for m in batch {
            if m.subject != Streams.legacyScanResults, let e = NotifierEvent(m), let tenant = e.tenant, !AuditRecorder.records(e) {
                quiet[tenant, default: []].append(m)
            } else {
                rest.append(m)
            }
        }
        for (tenant, messages) in quiet {
            // A read that started after the newest receipt answers for every event of the batch.
            let receivedAt = messages.map(\.receivedAt).max() ?? Date()
            var nothingWants = false
            do {
                if try await !webhooks.hasEndpoints(tenant: tenant, receivedAt: receivedAt) {
                    nothingWants = try await !channels.hasChannels(tenant: tenant, receivedAt: receivedAt)
                }
            } catch {
                nothingWants = false  // unsure: the handler decides, and retries if it must
            }
            guard nothingWants else {
                rest.append(contentsOf: messages)
                continue
            }
            for m in messages {
                do { try m.ack() } catch { rest.append(m) }
            }
        }
        return rest
    }
}

/// Answers the platform's `/ops/failures` (through the scan orchestrator) on internal subjects: the
/// webhook deliveries that failed for good, and a retry of one of them.
enum OpsFailureResponder {
    static func service(bus: BusConnection, dispatcher: WebhookDispatcher) throws -> SubscriptionService {
        let store = dispatcher.webhooks
        @Sendable func answer(_ msg: BusMessage, _ work: @escaping @Sendable () async throws -> [String: Any]) {
            guard let reply = msg.reply else { return }
            Task {
                let body: [String: Any]
                do { body = try await work() } catch { body = ["error": "\(error)"] }
                try? bus.publish(reply, data: (try? JSONSerialization.data(withJSONObject: body)) ?? Data())
            }
        }
        return SubscriptionService([
            try bus.subscribe(OpsSubjects.webhookFailures, queue: "q") { msg in
                answer(msg) { ["items": try await store.failedDeliveries(limit: 100)] }
            },
            try bus.subscribe(OpsSubjects.webhookRetry, queue: "q") { msg in
                let id = (try? JSONSerialization.jsonObject(with: msg.data) as? [String: Any])?["delivery_id"] as? String
                answer(msg) {
                    guard let id, ID.isValid(id), try await store.requeueFailed(id: id) else { return ["retried": false] }
                    dispatcher.poke()
                    return ["retried": true]
                }
            },
        ])
    }
}
