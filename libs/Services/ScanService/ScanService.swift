import Contracts
import Foundation
import ServiceLifecycle
import ServiceRuntime
import Store

/// The scan orchestrator: connections, scans (API role) and the scan workers (worker role).
public enum ScanService {
    public static let definition = ServiceDefinition(
        name: "scan-orchestrator", description: "Connections, scans, schedules and connectors", schema: "scans",
        migrations: ScanSchema.migrations
    ) { ctx in
        let r = ctx.config.reader
        let settings = try ScanSettings(r, logger: ctx.logger)
        let store = ctx.store!
        let connections = ConnectionHandlers(store: store, settings: settings, bus: ctx.bus)
        // Roles (DESIGN.md §2): "api" serves the REST subjects, "worker" runs scan jobs; default both.
        let roles = Set(r.string("VIGIL_SCAN_ROLES", default: "api,worker").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        if roles.contains("api") {
            connections.register(on: ctx.responder)
            ScanHandlers(store: store, bus: ctx.bus).register(on: ctx.responder)
            InstructionHandlers(publicURL: r.string("VIGIL_PUBLIC_URL", default: "http://127.0.0.1:8080")).register(on: ctx.responder)
        }
        var services: [any Service] = []
        if roles.contains("worker") {
            let ws = WorkerSettings(r)
            // One worker per provider, each on its own job subject (vigil.jobs.scan.<provider>).
            let worker = ScanWorker(provider: AWSScanProvider(connections: connections), store: store, settings: ws, logger: ctx.logger, bus: ctx.bus)
            let consumer = StreamConsumer(
                jetStream: ctx.jetStream, stream: Streams.jobs, config: worker.consumerConfig(),
                batch: ws.workerConcurrency, logger: ctx.logger, handler: worker.handle)
            try await consumer.prepare()
            services.append(consumer)
        }
        return services
    }
}
