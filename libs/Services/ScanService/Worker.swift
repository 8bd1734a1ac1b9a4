import AWS
import Bus
import Contracts
import Foundation
import Logging
import Net
import ScanEngine
import ServiceRuntime
import Store
import Synchronization
import VigilCore

/// Worker-role settings.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_SCAN_TENANT_CONCURRENCY | 2 | running scans per workspace; more wait queued |
/// | VIGIL_SCAN_WORKER_CONCURRENCY | 2 | scans one replica runs at once |
/// | VIGIL_SCAN_PART_CONCURRENCY | 6 | service/region parts of one scan collected at once |
/// | VIGIL_SCAN_RESOURCE_CONCURRENCY | 8 | per-resource API calls in one part at once |
/// | VIGIL_SCAN_MAX_ATTEMPTS | 3 | a scan whose worker fails (or dies) this often ends `failed` |
/// | VIGIL_SCAN_ACK_WAIT_SECONDS | 30 | a silent worker's job is redelivered after this; heartbeats every third of it |
struct WorkerSettings: Sendable {
    var tenantConcurrency: Int
    var workerConcurrency: Int
    var partConcurrency: Int
    var resourceConcurrency: Int
    var maxAttempts: Int
    var ackWait: Duration

    init(_ r: ConfigReader) {
        tenantConcurrency = max(1, r.int("VIGIL_SCAN_TENANT_CONCURRENCY", default: 2))
        workerConcurrency = max(1, r.int("VIGIL_SCAN_WORKER_CONCURRENCY", default: 2))
        partConcurrency = max(1, r.int("VIGIL_SCAN_PART_CONCURRENCY", default: 6))
        resourceConcurrency = max(1, r.int("VIGIL_SCAN_RESOURCE_CONCURRENCY", default: 8))
        maxAttempts = max(1, r.int("VIGIL_SCAN_MAX_ATTEMPTS", default: 3))
        ackWait = .seconds(max(3, r.int("VIGIL_SCAN_ACK_WAIT_SECONDS", default: 30)))
    }
}

/// Runs scan jobs from VIGIL_JOBS: claims the scan, collects its parts in parallel, writes each part's
/// results atomically with their outbox events, and finishes the scan. A redelivered job (the previous
/// worker died) skips parts that were already written, so results are neither lost nor duplicated.
struct ScanWorker: Sendable {
    let store: Store
    let connections: ConnectionHandlers
    let settings: WorkerSettings
    let logger: Logger
    let bus: BusConnection?

    /// The workspace's enabled rules (built-in with its overrides, plus its custom rules) from the
    /// findings service; the built-in rules when it cannot answer.
    func rules(tenantId: String) async -> [String: [Rule]] {
        if let bus {
            do {
                let reply = try await bus.request(
                    Endpoint<Empty, EffectiveRules>(Subjects.Findings.rulesEffective), Empty(),
                    context: CallContext(tenantId: tenantId), timeout: .seconds(5))
                return RuleEngine.index(reply.rules)
            } catch {
                logger.warning("rules from the findings service unavailable; scanning with the built-in rules", metadata: ["error": "\(error)"])
            }
        }
        return RuleEngine.index(BuiltinRules.all)
    }

    func consumerConfig() -> JetStream.ConsumerConfig {
        var c = JetStream.ConsumerConfig(durable: "scan-workers-aws", filterSubject: Jobs.scanAWS)
        c.ackWait = settings.ackWait
        c.maxDeliver = 2000
        c.maxAckPending = 1000
        return c
    }

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        guard let env = try? JSON.decode(JobEnvelope<ScanJob>.self, from: m.data) else {
            logger.error("undecodable scan job dropped", metadata: ["subject": "\(m.subject)"])
            return .drop
        }
        let job = env.data
        do {
            return try await run(job, message: m)
        } catch {
            logger.warning("scan attempt failed", metadata: ["scan_id": "\(job.scanId)", "error": "\(error)"])
            // Record the error; the attempt counter decides between another try and `failed`.
            let attempts =
                (try? await store.query(.tenant(job.tenantId), "SELECT attempts FROM scans.scans WHERE id = $1", [job.scanId]).first?.int("attempts"))
                ?? 0
            if attempts >= settings.maxAttempts {
                try? await finish(job, forcedStatus: "failed", error: "scan failed after \(attempts) attempts: \(AWSFailure.describe(error))")
                return .ack
            }
            _ = try? await store.query(
                .tenant(job.tenantId), "UPDATE scans.scans SET error = $2 WHERE id = $1 AND status = 'running'",
                [job.scanId, AWSFailure.describe(error)])
            return .retry(after: StreamConsumer.backoff(attempt: attempts, cap: .seconds(30)))
        }
    }

    enum Claim {
        case run(attempt: Int)
        case wait, skip
    }

    /// Moves the scan to running if the workspace has room; counts the attempt.
    func claim(_ job: ScanJob) async throws -> Claim {
        try await store.transaction(.tenant(job.tenantId)) { tx in
            _ = try await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["scan-tenant:" + job.tenantId])
            guard let row = try await tx.one("SELECT status, attempts FROM scans.scans WHERE id = $1 FOR UPDATE", [job.scanId]) else { return .skip }
            let status = try row.string("status")
            if ScanStatus.terminal.contains(status) { return .skip }
            if status == "queued" {
                let running = try await tx.one("SELECT count(*) AS n FROM scans.scans WHERE tenant_id = $1 AND status = 'running'", [job.tenantId])!
                if try running.int("n") >= settings.tenantConcurrency { return .wait }
            }
            let attempt = try row.int("attempts") + 1
            if attempt > settings.maxAttempts { return .run(attempt: attempt) }
            _ = try await tx.query(
                """
                UPDATE scans.scans SET status = 'running', attempts = $2, started_at = coalesce(started_at, now()), heartbeat_at = now()
                WHERE id = $1
                """, [job.scanId, attempt])
            if attempt == 1 {
                try await tx.emit(
                    Events.scanStarted, tenantId: job.tenantId,
                    data: ["scan_id": job.scanId, "connection_id": job.connectionId])
            }
            return .run(attempt: attempt)
        }
    }

    func run(_ job: ScanJob, message m: JetStreamMessage) async throws -> ConsumeOutcome {
        let attempt: Int
        switch try await claim(job) {
        case .skip: return .ack
        case .wait: return .retry(after: .seconds(3))
        case .run(let a): attempt = a
        }
        if attempt > settings.maxAttempts {
            let last = try await store.query(.tenant(job.tenantId), "SELECT error FROM scans.scans WHERE id = $1", [job.scanId]).first?
                .optionalString("error")
            try await finish(job, forcedStatus: "failed", error: "scan failed after \(attempt - 1) attempts" + (last.map { ": \($0)" } ?? ""))
            return .ack
        }
        let canceled = CancelFlag()
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: settings.ackWait / 3)
                if Task.isCancelled { break }
                try? m.inProgress()
                let row = try? await store.query(
                    .tenant(job.tenantId),
                    """
                    UPDATE scans.scans SET heartbeat_at = now() WHERE id = $1 RETURNING status
                    """, [job.scanId]
                ).first
                if let s = row?.optionalString("status"), s != "running" { canceled.set() }
            }
        }
        defer { heartbeat.cancel() }

        // Credentials and account.
        guard let conn = try await store.query(.tenant(job.tenantId), "SELECT * FROM scans.connections WHERE id = $1", [job.connectionId]).first
        else {
            try await finish(job, forcedStatus: "failed", error: "the connection was deleted")
            return .ack
        }
        var client: AWSClient
        let account: String
        let counter = CallCounter()
        do {
            let session = try await connections.session(conn, tenantId: job.tenantId, connectionId: job.connectionId)
            (client, account) = (session.client, session.account)
            client.counter = counter
        } catch let e as SessionError where e.permanent {
            try await finish(job, forcedStatus: "failed", error: e.message)
            return .ack
        }
        _ = try await store.query(.tenant(job.tenantId), "UPDATE scans.scans SET account_id = $2 WHERE id = $1", [job.scanId, account])

        // Plan the parts once; a redelivered job finds them already there.
        let scan = try await store.query(.tenant(job.tenantId), "SELECT regions, services FROM scans.scans WHERE id = $1", [job.scanId]).first!
        let regions = try scan.stringArray("regions")
        let services = try scan.stringArray("services")
        var planned: [(String, String)] = []
        for s in services {
            guard let c = AWSCollectors.named(s) else { continue }
            if c.global { planned.append((s, "global")) } else { planned += regions.map { (s, $0) } }
        }
        _ = try await store.query(
            .tenant(job.tenantId),
            """
            INSERT INTO scans.scan_parts (scan_id, tenant_id, service, region, status)
            SELECT $1, $2, s, r, 'pending' FROM unnest($3::text[], $4::text[]) AS t(s, r)
            ON CONFLICT (scan_id, service, region) DO NOTHING
            """, [job.scanId, job.tenantId, ArrayParameter(planned.map(\.0)), ArrayParameter(planned.map(\.1))])
        let todo = try await store.query(
            .tenant(job.tenantId),
            """
            SELECT service, region FROM scans.scan_parts WHERE scan_id = $1 AND status NOT IN ('completed', 'failed', 'unavailable')
            ORDER BY service, region
            """, [job.scanId]
        ).map { (try $0.string("service"), try $0.string("region")) }

        // Collect parts with bounded parallelism.
        let rules = await self.rules(tenantId: job.tenantId)
        let width = settings.partConcurrency
        let firstRegion = regions.first ?? "us-east-1"
        try await withThrowingTaskGroup(of: Void.self) { [client] group in
            var iterator = todo.makeIterator()
            func addNext() -> Bool {
                guard let (service, region) = iterator.next() else { return false }
                group.addTask {
                    if canceled.isSet { return }
                    try await runPart(
                        job, service: service, region: region, client: client, account: account,
                        signingRegion: region == "global" ? firstRegion : region, rules: rules, canceled: canceled)
                }
                return true
            }
            for _ in 0..<width { if !addNext() { break } }
            while try await group.next() != nil { _ = addNext() }
        }
        let calls = counter.snapshot
        _ = try await store.query(
            .tenant(job.tenantId), "UPDATE scans.scans SET api_calls = api_calls + $2, api_retries = api_retries + $3 WHERE id = $1",
            [job.scanId, calls.calls, calls.retries])
        try await finish(job, forcedStatus: nil, error: nil)
        return .ack
    }

    func runPart(
        _ job: ScanJob, service: String, region: String, client: AWSClient, account: String, signingRegion: String,
        rules: [String: [Rule]], canceled: CancelFlag
    ) async throws {
        let scope = TenantScope.tenant(job.tenantId)
        _ = try await store.query(
            scope,
            """
            UPDATE scans.scan_parts SET status = 'running', started_at = now() WHERE scan_id = $1 AND service = $2 AND region = $3
            """, [job.scanId, service, region])
        let collector = AWSCollectors.named(service)!
        let ctx = CollectContext(
            client: client, account: account, region: region == "global" ? signingRegion : region,
            width: settings.resourceConcurrency)
        let outcome: Result<PartOutcome, any Error> = await Result(catching: {
            try await Parallel.run { try collector.run(context: ctx, rules: rules, tenantId: job.tenantId, connectionId: job.connectionId) }
        })
        if canceled.isSet { return }
        switch outcome {
        case .success(let part):
            try await write(part, job: job, service: service, region: region, account: account)
        case .failure(let e):
            let unsupported = (e as? AWSError)?.isUnsupportedByEndpoint ?? false
            _ = try await store.query(
                scope,
                """
                UPDATE scans.scan_parts SET status = $4, error = $5, completed_at = now()
                WHERE scan_id = $1 AND service = $2 AND region = $3 AND status <> 'completed'
                """, [job.scanId, service, region, unsupported ? "unavailable" : "failed", AWSFailure.describe(e)])
            logger.info(
                "scan part did not complete",
                metadata: [
                    "scan_id": "\(job.scanId)", "service": "\(service)", "region": "\(region)",
                    "error": "\(AWSFailure.describe(e))",
                ])
        }
    }

    /// Writes one part's inventory and results, its counters and its result-batch events in one
    /// transaction. A part already written (by a worker that died before acking) is left as it is.
    func write(_ part: PartOutcome, job: ScanJob, service: String, region: String, account: String) async throws {
        struct Already: Error {}
        let fails = part.results.filter { $0.status == "FAIL" }
        var sev: [Severity: Int] = [:]
        for f in fails { sev[f.severity, default: 0] += 1 }
        let savings = fails.compactMap(\.estimatedMonthlySavings).reduce(0, +)
        do {
            try await store.transaction(.tenant(job.tenantId)) { tx in
                guard let scan = try await tx.one("SELECT status FROM scans.scans WHERE id = $1 FOR UPDATE", [job.scanId]),
                    try scan.string("status") == "running"
                else { throw Already() }
                let marked = try await tx.execute(
                    """
                    UPDATE scans.scan_parts SET status = 'completed', resources = $4, checks = $5, failures = $6, error = NULL, completed_at = now()
                    WHERE scan_id = $1 AND service = $2 AND region = $3 AND status <> 'completed'
                    """, [job.scanId, service, region, part.resources.count, part.results.count, fails.count])
                guard marked == 1 else { throw Already() }
                if !part.results.isEmpty {
                    _ = try await tx.query(
                        """
                        INSERT INTO scans.scan_results (scan_id, tenant_id, fingerprint, rule_id, status, severity, title, resource_id,
                          resource_type, resource_name, region, service, evidence, savings)
                        SELECT $1, $2, x.fingerprint, x.rule_id, x.status, x.severity, x.title, x.resource_id, x.resource_type, x.resource_name,
                          x.region, x.service, coalesce(x.evidence, '{}'::jsonb), x.estimated_monthly_savings
                        FROM jsonb_to_recordset($3::jsonb) AS x(fingerprint text, rule_id text, status text, severity text, title text,
                          resource_id text, resource_type text, resource_name text, region text, service text, evidence jsonb,
                          estimated_monthly_savings numeric)
                        ON CONFLICT (scan_id, fingerprint) DO NOTHING
                        """, [job.scanId, job.tenantId, try JSONParameter(part.results)])
                }
                if !part.resources.isEmpty {
                    _ = try await tx.query(
                        """
                        INSERT INTO scans.resources (tenant_id, connection_id, resource_id, type, service, region, name, tags, attributes,
                          last_scan_id, updated_at)
                        SELECT $1, $2, x.id, x.type, x.service, x.region, x.name, coalesce(x.tags, '{}'::jsonb), x.attributes, $3, now()
                        FROM jsonb_to_recordset($4::jsonb) AS x(id text, type text, service text, region text, name text, tags jsonb,
                          attributes jsonb)
                        ON CONFLICT (tenant_id, connection_id, resource_id) DO UPDATE SET type = excluded.type, service = excluded.service,
                          region = excluded.region, name = excluded.name, tags = excluded.tags, attributes = excluded.attributes,
                          last_scan_id = excluded.last_scan_id, updated_at = now()
                        """, [job.tenantId, job.connectionId, job.scanId, try JSONParameter(part.resources)])
                }
                _ = try await tx.query(
                    """
                    UPDATE scans.scans SET resources_scanned = resources_scanned + $2, checks_evaluated = checks_evaluated + $3,
                      critical_count = critical_count + $4, high_count = high_count + $5, medium_count = medium_count + $6,
                      low_count = low_count + $7, info_count = info_count + $8, savings = savings + $9
                    WHERE id = $1
                    """,
                    [
                        job.scanId, part.resources.count, part.results.count, sev[.critical] ?? 0, sev[.high] ?? 0, sev[.medium] ?? 0,
                        sev[.low] ?? 0, sev[.info] ?? 0, savings,
                    ])
                let size = 250
                let batches = max(1, (part.results.count + size - 1) / size)
                for b in 0..<batches where !part.results.isEmpty {
                    let slice = Array(part.results[(b * size)..<min(part.results.count, (b + 1) * size)])
                    try await tx.emit(
                        Jobs.findingsResults, type: "scan.results", tenantId: job.tenantId,
                        data: ScanResultsBatch(
                            scanId: job.scanId, connectionId: job.connectionId, provider: "aws", accountId: account, service: service,
                            region: region, batch: b + 1, batches: batches, results: slice))
                }
            }
        } catch is Already {
            return
        }
    }

    /// Ends the scan: `forcedStatus` (failed) or, from its parts, completed / failed. Counts are
    /// recomputed from stored results so they are exact whatever happened before.
    func finish(_ job: ScanJob, forcedStatus: String?, error: String?) async throws {
        try await store.transaction(.tenant(job.tenantId)) { tx in
            guard let row = try await tx.one("SELECT status FROM scans.scans WHERE id = $1 FOR UPDATE", [job.scanId]),
                !ScanStatus.terminal.contains(try row.string("status"))
            else { return }
            let parts = try await tx.query("SELECT * FROM scans.scan_parts WHERE scan_id = $1 ORDER BY service, region", [job.scanId]).map(
                ScanRows.part)
            var status = forcedStatus ?? "completed"
            var message = error
            let completed = parts.filter { $0.status == "completed" }
            let failed = parts.filter { $0.status == "failed" }
            if forcedStatus == nil {
                if !parts.isEmpty && completed.isEmpty && !failed.isEmpty {
                    status = "failed"
                    message =
                        "every part failed: " + failed.prefix(3).map { "\($0.service)/\($0.region): \($0.error ?? "error")" }.joined(separator: "; ")
                } else if !failed.isEmpty {
                    message =
                        "\(failed.count) of \(parts.count) parts failed: "
                        + failed.prefix(3).map { "\($0.service)/\($0.region): \($0.error ?? "error")" }.joined(separator: "; ")
                }
            }
            let complete = status == "completed" && !parts.isEmpty && completed.count == parts.count
            let updated = try await tx.one(
                """
                WITH r AS (SELECT count(*) AS checks,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'critical') AS c, count(*) FILTER (WHERE status = 'FAIL'
                      AND severity = 'high') AS h,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'medium') AS m, count(*) FILTER (WHERE status = 'FAIL'
                      AND severity = 'low') AS l,
                    count(*) FILTER (WHERE status = 'FAIL' AND severity = 'info') AS i, coalesce(sum(savings) FILTER (WHERE status = 'FAIL'), 0) AS s
                  FROM scans.scan_results WHERE scan_id = $1),
                p AS (SELECT coalesce(sum(resources), 0) AS n FROM scans.scan_parts WHERE scan_id = $1 AND status = 'completed')
                UPDATE scans.scans SET status = $2, error = $3, complete = $4, completed_at = now(), checks_evaluated = r.checks,
                  critical_count = r.c, high_count = r.h, medium_count = r.m, low_count = r.l, info_count = r.i, savings = r.s,
                    resources_scanned = p.n
                FROM r, p WHERE id = $1 RETURNING scans.scans.*
                """, [job.scanId, status, message, complete])!
            _ = try await tx.query("UPDATE scans.connections SET last_scan_at = now() WHERE id = $1", [job.connectionId])
            try await ScanRows.emitFinished(tx, try ScanRows.view(updated), tenantId: job.tenantId, parts: parts)
        }
    }
}

/// Set once when the scan is canceled (seen by the heartbeat), read by part tasks.
final class CancelFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
