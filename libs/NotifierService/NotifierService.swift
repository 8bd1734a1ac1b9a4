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
public enum NotifierService {
    public static let definition = ServiceDefinition(
        name: "notifier", description: "Webhooks, email and the audit log", schema: "notifier",
        migrations: NotifierSchema.migrations
    ) { ctx in
        let store = ctx.store!
        let r = ctx.config.reader
        var services: [any Service] = []

        let audit = AuditRecorder(store: store, logger: ctx.logger)
        var auditCfg = JetStream.ConsumerConfig(durable: "notifier-audit", filterSubject: "vigil.events.>")
        auditCfg.maxDeliver = 20
        services.append(StreamConsumer(jetStream: ctx.jetStream, stream: Streams.events, config: auditCfg, logger: ctx.logger,
                                       handler: audit.handle))

        let webhookSettings = try WebhookSettings(r, logger: ctx.logger)
        let dispatcher = WebhookDispatcher(store: store, settings: webhookSettings, logger: ctx.logger)
        var hookCfg = JetStream.ConsumerConfig(durable: "notifier-webhooks", filterSubject: "vigil.events.>")
        hookCfg.maxDeliver = 20
        services.append(StreamConsumer(jetStream: ctx.jetStream, stream: Streams.events, config: hookCfg, logger: ctx.logger,
                                       handler: dispatcher.fanOut))
        services.append(WebhookDeliveryService(dispatcher: dispatcher))

        if let host = r.optional("VIGIL_SMTP_HOST") {
            let smtp = SMTPClient(settings: SMTPSettings(
                host: host, port: r.int("VIGIL_SMTP_PORT", default: 587), security: r.string("VIGIL_SMTP_SECURITY", default: "starttls"),
                username: r.optional("VIGIL_SMTP_USERNAME"), password: r.optional("VIGIL_SMTP_PASSWORD"),
                from: r.string("VIGIL_SMTP_FROM", default: "Vigil <no-reply@vigil.local>"),
                verifyTLS: r.bool("VIGIL_SMTP_VERIFY_TLS", default: true)))
            var mailCfg = JetStream.ConsumerConfig(durable: "notifier-email", filterSubject: Streams.emailSend)
            mailCfg.maxDeliver = 12
            mailCfg.ackWait = .seconds(60)
            let sender = EmailSender(store: store, smtp: smtp, logger: ctx.logger)
            services.append(StreamConsumer(jetStream: ctx.jetStream, stream: Streams.jobs, config: mailCfg, logger: ctx.logger,
                                           handler: sender.handle))
        } else {
            ctx.logger.warning("VIGIL_SMTP_HOST is not set: requested emails stay queued in VIGIL_JOBS until it is")
        }
        for case let c as StreamConsumer in services { try await c.prepare() }
        NotifierHandlers(store: store, dispatcher: dispatcher).register(on: ctx.responder)
        let channels = ChannelService(store: store, keys: webhookSettings.keys,
                                      http: OutboundHTTP(guardrail: webhookSettings.guardrail, timeout: webhookSettings.timeout),
                                      guardrail: webhookSettings.guardrail, logger: ctx.logger)
        channels.register(on: ctx.responder)
        var channelCfg = JetStream.ConsumerConfig(durable: "notifier-channels", filterSubject: "vigil.events.>")
        channelCfg.maxDeliver = 12
        let channelConsumer = StreamConsumer(jetStream: ctx.jetStream, stream: Streams.events, config: channelCfg, logger: ctx.logger,
                                             handler: channels.handle)
        try await channelConsumer.prepare()
        services.append(channelConsumer)
        ctx.responder.add(Endpoint<ContactRequest, ContactReply>("vigil.notifier.contact.submit"),
                          handler: ContactHandler(store: store, reader: r).submit)
        return services
    }
}
