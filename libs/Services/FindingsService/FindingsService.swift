import Bus
import Contracts
import Foundation
import Logging
import ScanEngine
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

/// The findings service: ingests scan results from the bus, keeps each finding's lifecycle, serves
/// findings, finding events, rules (built-in + custom, per-workspace overrides), compliance and reports.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_FINDINGS_SWEEP_SECONDS | 30 | how often expired suppressions / risk acceptances return to `open` |
/// | VIGIL_FINDINGS_INGEST_CONCURRENCY | 8 | result batches ingested at once per replica |
///
/// Findings and finding events get time-ordered ids (UUID version 7: 48 bits of milliseconds, then
/// random): their primary-key indexes grow at the right edge instead of at a random page per row.
public enum FindingsService {
    public static let definition = ServiceDefinition(
        name: "findings", description: "Findings, rules, compliance and reports", schema: "findings",
        migrations: FindingsSchema.migrations, tenantPredicate: .uuid
    ) { ctx in
        let store = ctx.store!
        let r = ctx.config.reader
        let catalog = RuleCatalog(store: store)
        let ingest = Ingestor(store: store, logger: ctx.logger)
        // Result batches are work on VIGIL_JOBS; scan completions (and batches of an earlier version)
        // are events.
        var resultsCfg = JetStream.ConsumerConfig(durable: "findings-results", filterSubject: Jobs.findingsResults)
        resultsCfg.maxDeliver = 200
        resultsCfg.ackWait = .seconds(60)
        let results = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.jobs, config: resultsCfg,
            batch: max(1, r.int("VIGIL_FINDINGS_INGEST_CONCURRENCY", default: 8)), logger: ctx.logger,
            handler: ingest.handle)
        try await results.prepare()
        var cfg = JetStream.ConsumerConfig(durable: "findings-ingest", filterSubject: Events.all(of: "scan"))
        cfg.maxDeliver = 200
        cfg.ackWait = .seconds(60)
        let consumer = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.events, config: cfg, batch: 4, logger: ctx.logger,
            handler: ingest.handle)
        try await consumer.prepare()
        var followCfg = JetStream.ConsumerConfig(durable: "findings-remediation", filterSubject: Events.all(of: "remediation"))
        followCfg.maxDeliver = 200
        let follower = StreamConsumer(
            jetStream: ctx.jetStream, stream: Streams.events, config: followCfg, batch: 4, logger: ctx.logger,
            handler: RemediationFollower(store: store, logger: ctx.logger).handle)
        try await follower.prepare()
        FindingHandlers(store: store, catalog: catalog, maxReply: ctx.bus.maxPayload).register(on: ctx.responder)
        RepoFindingHandlers(store: store, catalog: catalog, bus: ctx.bus).register(on: ctx.responder)
        RuleHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        ComplianceHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        ReportHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        SuppressionHandlers(store: store, catalog: catalog).register(on: ctx.responder)
        let expiry = ExpirySweeper(store: store)
        let sweeper = PeriodicService(
            "expiry sweep", every: .seconds(max(1, r.int("VIGIL_FINDINGS_SWEEP_SECONDS", default: 30))),
            logger: ctx.logger
        ) { _ = try await expiry.sweep() }
        return [results, consumer, follower, sweeper]
    }
}
