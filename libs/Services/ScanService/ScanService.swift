import Bus
import Contracts
import Foundation
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore
import Web

/// The scan orchestrator: connections, scans and schedules with their scheduler (API role) and the scan
/// workers (worker role).
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_SCAN_ROLES | api,worker | which roles this replica plays |
/// | VIGIL_PLATFORM_WORKSPACE | (none) | slug of the workspace whose owners and admins may call /ops/* (none: nobody) |
/// | VIGIL_SCHEDULER_TICK_SECONDS | 15 | how often due schedules are claimed and their scans started (every API replica; each run starts once) |
public enum ScanService {
    public static let definition = ServiceDefinition(
        name: "scan-orchestrator", description: "Connections, scans, schedules and connectors", schema: "scans",
        migrations: ScanSchema.migrations
    ) { ctx in
        let r = ctx.config.reader
        let settings = try ScanSettings(r, logger: ctx.logger)
        let store = ctx.store!
        let connections = ConnectionHandlers(store: store, settings: settings, bus: ctx.bus)
        let connectorSettings = ConnectorSettings(r)
        // Roles (DESIGN.md §2): "api" serves the REST subjects, "worker" runs scan jobs; default both.
        let roles = Set(r.string("VIGIL_SCAN_ROLES", default: "api,worker").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        var services: [any Service] = []
        if roles.contains("api") {
            connections.register(on: ctx.responder)
            let scans = ScanHandlers(store: store, bus: ctx.bus)
            scans.register(on: ctx.responder)
            WebScanHandlers(connections: connections, scans: scans, bus: ctx.bus).register(on: ctx.responder)
            let repositories = RepositoryHandlers(connections: connections, scans: scans)
            repositories.register(on: ctx.responder)
            RepoFixHandlers(repositories: repositories, bus: ctx.bus).register(on: ctx.responder)
            DomainHandlers(store: store, settings: settings).register(on: ctx.responder)
            let scheduler = Scheduler(store: store, bus: ctx.bus, scans: scans, logger: ctx.logger)
            ScheduleHandlers(store: store, scheduler: scheduler).register(on: ctx.responder)
            ConnectorHandlers(store: store, settings: connectorSettings).register(on: ctx.responder)
            ScanPolicyHandlers(store: store).register(on: ctx.responder)
            ProxyHandlers(store: store, settings: settings).register(on: ctx.responder)
            OpsHandlers(bus: ctx.bus, jetStream: ctx.jetStream, platformWorkspace: r.optional("VIGIL_PLATFORM_WORKSPACE")).register(on: ctx.responder)
            MetaHandlers(
                sshGuardrailAllowsPrivate: settings.sshGuardrail.allowPrivate, repoScanTypes: settings.repoScanTypes, osvDatabase: settings.osv != nil
            ).register(on: ctx.responder)
            ConnectorAPI(store: store, settings: connectorSettings, vault: settings.vault, logger: ctx.logger).register(on: ctx.responder)
            services.append(
                PeriodicService("scheduler", every: .seconds(max(1, r.int("VIGIL_SCHEDULER_TICK_SECONDS", default: 15))), logger: ctx.logger) {
                    try await scheduler.tick()
                })
            InstructionHandlers(publicURL: r.string("VIGIL_PUBLIC_URL", default: "http://127.0.0.1:8080")).register(on: ctx.responder)
            // The findings service says when a scan's findings are final: GET /scans/{id} shows findings_ingested.
            var ingestedCfg = JetStream.ConsumerConfig(durable: "scan-orchestrator-ingested", filterSubject: Events.findingsScanIngested.subject)
            ingestedCfg.maxDeliver = 100
            let ingested = StreamConsumer(
                jetStream: ctx.jetStream, stream: Streams.events, config: ingestedCfg, batch: 64, logger: ctx.logger
            ) { [logger = ctx.logger] m in
                struct Ingested: Codable, Sendable { var scanId: String }
                guard let env = try? JSON.decode(EventEnvelope<Ingested>.self, from: m.data), let tenant = env.tenantId, ID.isValid(env.data.scanId)
                else {
                    logger.error("undecodable findings.scan_ingested event dropped")
                    return .drop
                }
                do {
                    try await ScanStore(db: store).markIngested(scanId: env.data.scanId, tenantId: tenant)
                    return .ack
                } catch {
                    return .retry(after: .seconds(1))
                }
            }
            try await ingested.prepare()
            services.append(ingested)
        }
        if roles.contains("worker") {
            let ws = WorkerSettings(r)
            // One worker per provider, each on its own job subject (vigil.jobs.scan.<provider>).
            let aws = ScanWorker(provider: AWSScanProvider(connections: connections), store: store, settings: ws, logger: ctx.logger, bus: ctx.bus)
            let host = ScanWorker(
                provider: HostScanProvider(
                    store: store, connectors: ConnectorStore(db: store, onlineWithin: connectorSettings.onlineWithin), connections: connections,
                    settings: connectorSettings),
                store: store, settings: ws, logger: ctx.logger, bus: ctx.bus)
            let web = ScanWorker(
                provider: WebScanProvider(
                    guardrail: settings.webGuardrail,
                    limits: WebLimits(
                        seconds: Double(r.int("VIGIL_WEB_SCAN_SECONDS", default: 30)), requests: r.int("VIGIL_WEB_SCAN_REQUESTS", default: 150))),
                store: store, settings: ws, logger: ctx.logger, bus: ctx.bus)
            let repo = ScanWorker(
                provider: RepoScanProvider(settings: settings, store: store), store: store, settings: ws, logger: ctx.logger, bus: ctx.bus)
            let fixes = RepoFixWorker(store: store, settings: settings, logger: ctx.logger, ackWait: ws.ackWait)
            for consumer in [
                StreamConsumer(
                    jetStream: ctx.jetStream, stream: Streams.jobs, config: fixes.consumerConfig(), batch: ws.workerConcurrency, logger: ctx.logger,
                    handler: fixes.handle),
                StreamConsumer(
                    jetStream: ctx.jetStream, stream: Streams.jobs, config: aws.consumerConfig(), batch: ws.workerConcurrency, logger: ctx.logger,
                    handler: aws.handle),
                StreamConsumer(
                    jetStream: ctx.jetStream, stream: Streams.jobs, config: host.consumerConfig(), batch: ws.workerConcurrency, logger: ctx.logger,
                    handler: host.handle),
                StreamConsumer(
                    jetStream: ctx.jetStream, stream: Streams.jobs, config: web.consumerConfig(), batch: ws.workerConcurrency, logger: ctx.logger,
                    handler: web.handle),
                StreamConsumer(
                    jetStream: ctx.jetStream, stream: Streams.jobs, config: repo.consumerConfig(), batch: ws.workerConcurrency, logger: ctx.logger,
                    handler: repo.handle),
            ] {
                try await consumer.prepare()
                services.append(consumer)
            }
        }
        return services
    }
}
