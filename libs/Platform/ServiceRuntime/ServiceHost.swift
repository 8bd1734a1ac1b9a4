import Bus
import Contracts
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Store
import VigilCore

/// What a service needs while it registers and runs: its connections and configuration.
public struct ServiceContext: Sendable {
    public let name: String
    public let config: ServiceConfig
    public let bus: BusConnection
    public let jetStream: JetStream
    public let store: Store?
    public let responder: ServiceResponder
    public let logger: Logger
}

/// Describes one Vigil service: its bus name, its schema and migrations, and how it registers
/// endpoints. Every executable is `ServiceHost.main(definition)`.
public struct ServiceDefinition: Sendable {
    public var name: String
    public var description: String
    /// Postgres schema this service owns, or nil for stateless services (gateway).
    public var schema: String?
    public var migrations: [Migration]
    /// How the schema's row-level security compares tenants (see `TenantPredicate`).
    public var tenantPredicate: TenantPredicate
    /// Registers endpoints on the responder and returns extra long-running services (HTTP servers,
    /// consumers) to run alongside.
    public var setup: @Sendable (ServiceContext) async throws -> [any Service]

    public init(
        name: String, description: String, schema: String?, migrations: [Migration] = [], tenantPredicate: TenantPredicate = .text,
        setup: @escaping @Sendable (ServiceContext) async throws -> [any Service] = { _ in [] }
    ) {
        self.name = name
        self.description = description
        self.schema = schema
        self.migrations = migrations
        self.tenantPredicate = tenantPredicate
        self.setup = setup
    }
}

/// A started service: connections open, migrations applied, endpoints subscribed.
public final class RunningService: Sendable {
    public let context: ServiceContext
    let relayTask: Task<Void, Never>?
    public let extraServices: [any Service]
    let health: BusSubscription?

    init(context: ServiceContext, relayTask: Task<Void, Never>?, extraServices: [any Service], health: BusSubscription? = nil) {
        self.context = context
        self.relayTask = relayTask
        self.health = health
        self.extraServices = extraServices
    }

    /// Graceful stop: stop taking requests, let in-flight ones finish, stop the relay, drain the bus.
    public func stop() async {
        health?.unsubscribe()
        await context.responder.stop()
        relayTask?.cancel()
        _ = await relayTask?.value
        await context.bus.close()
        await context.jetStream.bus.close()
    }
}

public enum ServiceHost {
    /// Makes the process logger (JSON lines) once.
    public static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: level) }
    }

    /// Connects, ensures streams, migrates, registers and starts serving. Used by `main` and tests.
    public static func start(_ def: ServiceDefinition, config: ServiceConfig, logger: Logger? = nil) async throws -> RunningService {
        var log = logger ?? Logger(label: "vigil.\(def.name)")
        log.logLevel = config.logLevel
        _ = VigilMetrics.registry()
        let bus = try await BusConnection(.init(url: config.natsURL, name: "vigil-\(def.name)"), logger: log)
        // Streams get their own connection that coalesces writes: acks, fetches and pipelined
        // publishes are many small messages, and request/reply latency does not matter for them.
        let streams = try await BusConnection(.init(url: config.natsURL, name: "vigil-\(def.name)-streams", sendAsap: false), logger: log)
        // VIGIL_JS_REPLICAS: 3 on a three-node JetStream cluster (streams and buckets survive a node).
        let js = try JetStream(bus: streams, replicas: config.reader.int("VIGIL_JS_REPLICAS", default: 1))
        // A cluster that is still electing its JetStream leader refuses stream requests for a few seconds.
        try await retrying(logger: log, what: "JetStream") {
            try await js.ensureStream(
                name: Streams.events, subjects: Streams.eventSubjects, retention: .limits,
                maxAge: .seconds(7 * 24 * 3600))
            try await js.ensureStream(
                name: Streams.jobs, subjects: Streams.jobSubjects, retention: .workQueue,
                maxAge: .seconds(7 * 24 * 3600))
            try await js.ensureStream(
                name: Streams.dead, subjects: Streams.deadSubjects, retention: .limits, maxAge: .seconds(14 * 24 * 3600))
        }
        var store: Store? = nil
        if let schema = def.schema {
            let r = config.reader
            let pooler = r.string("VIGIL_DATABASE_POOLER", default: "session")
            guard ["session", "transaction"].contains(pooler) else {
                throw ServiceError.`internal`("VIGIL_DATABASE_POOLER must be session or transaction (a PgBouncer in transaction mode in front)")
            }
            let s = Store(
                url: config.databaseURL, schema: schema, poolSize: config.dbPoolSize, readURL: r.optional("VIGIL_DATABASE_READ_URL"),
                sessionless: pooler == "transaction", migrationURL: r.optional("VIGIL_DATABASE_MIGRATION_URL"), logger: log)
            try await retrying(logger: log, what: "database") { try await s.ping() }
            // VIGIL_SCHEMA_VERSION_MAX=`schema=version,…` stops at a version (staged upgrades; the upgrade test
            // starts the previous release's schemas this way).
            let cap = config.reader.string("VIGIL_SCHEMA_VERSION_MAX", default: "").split(separator: ",")
                .compactMap { entry -> Int? in
                    let kv = entry.split(separator: "=")
                    return kv.count == 2 && kv[0].trimmingCharacters(in: .whitespaces) == schema ? Int(kv[1]) : nil
                }.first
            try await s.migrate(def.migrations.filter { $0.version <= (cap ?? Int.max) }, tenantPredicate: def.tenantPredicate)
            store = s
        }
        let responder = ServiceResponder(
            bus: bus, name: def.name, version: config.version,
            description: def.description, logger: log, authorize: RouteAccess.authorize)
        let ctx = ServiceContext(
            name: def.name, config: config, bus: bus, jetStream: js, store: store,
            responder: responder, logger: log)
        let extra = try await def.setup(ctx)
        try responder.start()
        let health = try Health.serve(name: def.name, bus: bus, store: store)
        let relay = store.map { s in Task { await OutboxRelay(store: s, jetStream: js).run() } }
        return RunningService(context: ctx, relayTask: relay, extraServices: extra, health: health)
    }

    /// Retries `body` for up to `attempts` with a fixed pause (dependencies starting in parallel).
    static func retrying(logger: Logger, what: String, attempts: Int = 30, _ body: () async throws -> Void) async throws {
        for i in 1...attempts {
            do { return try await body() } catch {
                if i == attempts { throw error }
                logger.warning("\(what) not ready, retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// The executable entry point: `--health` checks a running replica; otherwise run until SIGTERM/SIGINT.
    public static func main(_ def: ServiceDefinition) async {
        let config = ServiceConfig()
        bootstrapLogging(level: config.logLevel)
        let logger = Logger(label: "vigil.\(def.name)")
        if config.reader.bool("VIGIL_HEALTH", default: false) {
            exit(await healthCheck(def.name, config: config) ? 0 : 1)
        }
        do {
            let running = try await start(def, config: config, logger: logger)
            var services: [any Service] = [LifecycleAdapter(running: running)] + running.extraServices
            if config.opsPort > 0 && def.name != "gateway" {
                services.append(opsServer(config: config, running: running))
            }
            let group = ServiceGroup(
                configuration: .init(
                    services: services.map { .init(service: $0) },
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
            try await group.run()
        } catch {
            logger.critical("service failed", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    /// Asks the named service over `$SRV.PING.<name>`; true when a replica answers.
    public static func healthCheck(_ name: String, config: ServiceConfig) async -> Bool {
        guard
            let bus = try? await BusConnection(
                .init(url: config.natsURL, name: "vigil-health"),
                logger: Logger(label: "health"))
        else { return false }
        defer { Task { await bus.close() } }
        return (try? await bus.request("$SRV.PING.\(name)", data: Data(), timeout: .seconds(2))) != nil
    }

    /// /health and /metrics for container probes and Prometheus scrapes.
    static func opsServer(config: ServiceConfig, running: RunningService) -> some Service {
        let router = Router()
        router.get("/health") { _, _ -> Response in
            let nats = running.context.bus.isConnected
            let postgres = await Health.postgres(running.context.store)
            let ok = nats && postgres != "down"
            return Response(
                status: ok ? .ok : .serviceUnavailable,
                body: .init(
                    byteBuffer: ByteBuffer(
                        string:
                            #"{"status":"\#(ok ? "ok" : "degraded")","dependencies":{"nats":"\#(nats ? "up" : "down")","postgres":"\#(postgres)"}}"#))
            )
        }
        router.get("/metrics") { _, _ in VigilMetrics.exposition() }
        return Application(
            router: router, configuration: .init(address: .hostname(config.opsHost, port: config.opsPort)),
            logger: running.context.logger)
    }
}

/// Lets a `RunningService` take part in a ServiceGroup: it waits for shutdown, then stops gracefully.
struct LifecycleAdapter: Service {
    let running: RunningService
    func run() async throws {
        // Said here, not when `start` returns: the service group traps SIGTERM/SIGINT before it runs its
        // services, so a stop asked for after this line is always graceful (before it, the default
        // action killed the process).
        running.context.logger.info(
            "service started", metadata: ["service": "\(running.context.name)", "id": "\(running.context.responder.id)"])
        try? await gracefulShutdown()
        await running.stop()
    }
}

/// Dependency health: each service answers `vigil.health.<name>` (one replica of the queue group) with whether
/// its database answers; the gateway's `/health` gathers them, so it says which dependency is down.
public enum Health {
    public static func subject(_ service: String) -> String { "vigil.health.\(service)" }

    /// `up`, `down` (no answer within a second), or `none` (the service has no database).
    public static func postgres(_ store: Store?) async -> String {
        guard let store else { return "none" }
        let ok = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await store.ping()) != nil }
            group.addTask {
                try? await Task.sleep(for: .seconds(1))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        return ok ? "up" : "down"
    }

    static func serve(name: String, bus: BusConnection, store: Store?) throws -> BusSubscription {
        try bus.subscribe(subject(name), queue: "q") { msg in
            guard let reply = msg.reply else { return }
            Task {
                let pg = await postgres(store)
                var body: [String: Any] = ["service": name, "postgres": pg]
                // Asked by `/ops/failures`: outbox rows the relay has not published for 30 seconds.
                if let store, pg == "up", String(decoding: msg.data, as: UTF8.self).contains("\"outbox\"") {
                    body["outbox"] = (try? await stuckOutbox(store)) ?? []
                }
                let data = (try? JSONSerialization.data(withJSONObject: body)) ?? Data()
                try? bus.publish(reply, data: data)
            }
        }
    }

    /// Up to 50 outbox rows unpublished for 30 seconds or more, oldest first.
    static func stuckOutbox(_ store: Store) async throws -> [[String: Any]] {
        try await store.query(
            .none,
            """
            SELECT id::text, CASE WHEN batch THEN 'batch' ELSE subject END AS subject, to_char(created_at AT TIME ZONE 'UTC',
              'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at FROM \(store.schema).outbox
            WHERE published_at IS NULL AND created_at < now() - interval '30 seconds' ORDER BY seq LIMIT 50
            """
        ).map { ["id": try $0.string("id"), "subject": try $0.string("subject"), "created_at": try $0.string("created_at")] }
    }
}
