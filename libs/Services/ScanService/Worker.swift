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

/// Runs one provider's scan jobs from VIGIL_JOBS: claims the scan, collects its parts in parallel
/// through the provider, evaluates the rules, writes each part's results atomically with their outbox
/// events, and finishes the scan. A redelivered job (the previous worker died) skips parts that were
/// already written, so results are neither lost nor duplicated.
struct ScanWorker<Provider: ScanProvider>: Sendable {
    let provider: Provider
    let store: Store
    let settings: WorkerSettings
    let logger: Logger
    let bus: BusConnection?
    var scans: ScanStore { ScanStore(db: store) }

    /// The workspace's enabled rules (built-in with its overrides, plus its custom rules) from the
    /// findings service; the built-in rules when it cannot answer.
    func rules(tenantId: String) async -> [String: [Rule]] {
        if let bus {
            do {
                let reply = try await bus.request(
                    Endpoint<Empty, EffectiveRules>(Subjects.Findings.rulesEffective), Empty(),
                    context: CallContext(tenantId: tenantId), timeout: .seconds(10), resendAt: BusConnection.resends(.seconds(10)))
                return RuleEngine.index(reply.rules)
            } catch {
                logger.warning("rules from the findings service unavailable; scanning with the built-in rules", metadata: ["error": "\(error)"])
            }
        }
        return RuleEngine.index(BuiltinRules.all)
    }

    func consumerConfig() -> JetStream.ConsumerConfig {
        var c = JetStream.ConsumerConfig(durable: "scan-workers-\(provider.name)", filterSubject: Jobs.scan(provider: provider.name))
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
            if let e = error as? StoreError, e.connectionLost {
                // PostgreSQL restarted or is unreachable: the scan did nothing wrong. Its attempt is given back
                // (maxDeliver bounds the redeliveries) and it resumes its unfinished parts once the database is back.
                try? await scans.refundAttempt(id: job.scanId, tenantId: job.tenantId)
                return .retry(after: .seconds(2))
            }
            // Record the error; the attempt counter decides between another try and `failed`.
            let attempts = (try? await scans.attempts(id: job.scanId, tenantId: job.tenantId)) ?? 0
            if attempts >= settings.maxAttempts {
                try? await finish(job, forcedStatus: .failed, error: "scan failed after \(attempts) attempts: \(provider.describe(error))")
                return .ack
            }
            try? await scans.recordAttemptError(id: job.scanId, tenantId: job.tenantId, error: provider.describe(error))
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
            try await scans.serializeClaims(tx, tenantId: job.tenantId)
            guard let (status, attempts) = try await scans.lockForClaim(tx, id: job.scanId) else { return .skip }
            if status.isTerminal { return .skip }
            if status == .queued, try await scans.runningCount(tx, tenantId: job.tenantId) >= settings.tenantConcurrency { return .wait }
            let attempt = attempts + 1
            if attempt > settings.maxAttempts { return .run(attempt: attempt) }
            try await scans.markRunning(tx, id: job.scanId, attempt: attempt)
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
            let last = try await scans.lastError(id: job.scanId, tenantId: job.tenantId)
            try await finish(job, forcedStatus: .failed, error: "scan failed after \(attempt - 1) attempts" + (last.map { ": \($0)" } ?? ""))
            return .ack
        }
        let canceled = CancelFlag()
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: settings.ackWait / 3)
                if Task.isCancelled { break }
                try? m.inProgress()
                if let status = try? await scans.heartbeat(id: job.scanId, tenantId: job.tenantId), status != .running { canceled.set() }
            }
        }
        defer { heartbeat.cancel() }

        // Credentials and account.
        guard let conn = try await ConnectionStore(db: store).find(id: job.connectionId, tenantId: job.tenantId) else {
            try await finish(job, forcedStatus: .failed, error: "the connection was deleted")
            return .ack
        }
        let (regions, services, mode) = try await scans.target(id: job.scanId, tenantId: job.tenantId)
        let target = ScanTarget(regions: regions, services: services, mode: mode, scanId: job.scanId, tenantId: job.tenantId)
        let session: Provider.Session
        let account: String
        do {
            (session, account) = try await provider.open(conn, tenantId: job.tenantId, target: target)
        } catch let e as SessionError where e.permanent {
            try await finish(job, forcedStatus: .failed, error: e.message)
            return .ack
        }
        try await scans.setAccount(id: job.scanId, tenantId: job.tenantId, account: account)

        // Plan the parts once; a redelivered job finds them already there.
        let todo = try await scans.plan(scanId: job.scanId, tenantId: job.tenantId, parts: provider.plan(target))

        // Collect parts with bounded parallelism.
        let rules = await self.rules(tenantId: job.tenantId)
        let width = settings.partConcurrency
        try await withThrowingTaskGroup(of: Void.self) { group in
            var iterator = todo.makeIterator()
            func addNext() -> Bool {
                guard let (service, region) = iterator.next() else { return false }
                group.addTask {
                    if canceled.isSet { return }
                    try await runPart(job, service: service, region: region, session: session, account: account, rules: rules, canceled: canceled)
                }
                return true
            }
            for _ in 0..<width { if !addNext() { break } }
            while try await group.next() != nil { _ = addNext() }
        }
        let calls = provider.calls(session)
        try await scans.addAPICalls(id: job.scanId, tenantId: job.tenantId, calls: calls.calls, retries: calls.retries)
        try await finish(job, forcedStatus: nil, error: nil)
        return .ack
    }

    func runPart(
        _ job: ScanJob, service: String, region: String, session: Provider.Session, account: String, rules: [String: [Rule]],
        canceled: CancelFlag
    ) async throws {
        try await scans.markPartRunning(scanId: job.scanId, tenantId: job.tenantId, service: service, region: region)
        let outcome: Result<PartOutcome, any Error> = await Result(catching: {
            let resources = try await provider.collect(service: service, region: region, session: session, width: settings.resourceConcurrency)
            let results = Scanner.evaluate(resources, rules: rules, tenantId: job.tenantId, connectionId: job.connectionId)
            return PartOutcome(resources: resources, results: results)
        })
        if canceled.isSet { return }
        // Cut short because another part of this attempt failed (the group cancels its siblings): the part
        // stays unfinished for the next attempt; it did not fail on its own.
        if case .failure = outcome, Task.isCancelled { throw CancellationError() }
        switch outcome {
        case .success(let part):
            try await write(part, job: job, service: service, region: region, account: account)
        case .failure(let e):
            let unsupported = provider.isUnavailable(e)
            try await scans.markPartEnded(
                scanId: job.scanId, tenantId: job.tenantId, service: service, region: region,
                status: unsupported ? .unavailable : .failed, error: provider.describe(e))
            logger.info(
                "scan part did not complete",
                metadata: [
                    "scan_id": "\(job.scanId)", "service": "\(service)", "region": "\(region)",
                    "error": "\(provider.describe(e))",
                ])
        }
    }

    /// Writes one part's inventory and results, its counters and its result-batch events in one
    /// transaction. A part already written (by a worker that died before acking) is left as it is.
    func write(_ part: PartOutcome, job: ScanJob, service: String, region: String, account: String) async throws {
        let fails = part.results.filter { $0.status == "FAIL" }
        var sev: [Severity: Int] = [:]
        for f in fails { sev[f.severity, default: 0] += 1 }
        let savings = fails.compactMap(\.estimatedMonthlySavings).reduce(0, +)
        do {
            try await store.transaction(.tenant(job.tenantId)) { tx in
                guard try await scans.lockStatus(tx, id: job.scanId) == .running else { throw PartAlreadyWritten() }
                guard
                    try await scans.markPartCompleted(
                        tx, scanId: job.scanId, service: service, region: region, resources: part.resources.count,
                        checks: part.results.count, failures: fails.count)
                else { throw PartAlreadyWritten() }
                try await scans.insertResults(tx, scanId: job.scanId, tenantId: job.tenantId, part.results)
                try await InventoryStore().upsert(
                    tx, tenantId: job.tenantId, connectionId: job.connectionId, scanId: job.scanId, part.resources)
                try await scans.addCounts(
                    tx, id: job.scanId, resources: part.resources.count, checks: part.results.count, failures: sev, savings: savings)
                let size = 250
                let batches = max(1, (part.results.count + size - 1) / size)
                for b in 0..<batches where !part.results.isEmpty {
                    let slice = Array(part.results[(b * size)..<min(part.results.count, (b + 1) * size)])
                    try await tx.emit(
                        Jobs.findingsResults, type: "scan.results", tenantId: job.tenantId,
                        data: ScanResultsBatch(
                            scanId: job.scanId, connectionId: job.connectionId, provider: provider.name, accountId: account, service: service,
                            region: region, batch: b + 1, batches: batches, results: slice))
                }
            }
        } catch is PartAlreadyWritten {
            return
        }
    }

    /// Ends the scan: `forcedStatus` (failed) or, from its parts, completed / failed. Counts are
    /// recomputed from stored results so they are exact whatever happened before.
    func finish(_ job: ScanJob, forcedStatus: ScanStatus?, error: String?) async throws {
        try await store.transaction(.tenant(job.tenantId)) { tx in
            guard let current = try await scans.lockStatus(tx, id: job.scanId), !current.isTerminal else { return }
            let parts = try await scans.parts(tx, scanId: job.scanId)
            var status = forcedStatus ?? .completed
            var message = error
            let completed = parts.filter { $0.status == PartStatus.completed.rawValue }
            let failed = parts.filter { $0.status == PartStatus.failed.rawValue }
            if forcedStatus == nil {
                if !parts.isEmpty && completed.isEmpty && !failed.isEmpty {
                    status = .failed
                    message =
                        "every part failed: " + failed.prefix(3).map { "\($0.service)/\($0.region): \($0.error ?? "error")" }.joined(separator: "; ")
                } else if !failed.isEmpty {
                    message =
                        "\(failed.count) of \(parts.count) parts failed: "
                        + failed.prefix(3).map { "\($0.service)/\($0.region): \($0.error ?? "error")" }.joined(separator: "; ")
                }
            }
            let complete = status == .completed && !parts.isEmpty && completed.count == parts.count
            let scan = try await scans.finalize(tx, id: job.scanId, status: status, error: message, complete: complete)
            try await ConnectionStore(db: store).recordScan(tx, id: job.connectionId)
            try await ScanEvents.finished(tx, scan, tenantId: job.tenantId, parts: parts)
        }
    }
}

/// A part another worker already wrote (it died before acknowledging the job): nothing to do.
private struct PartAlreadyWritten: Error {}

/// Set once when the scan is canceled (seen by the heartbeat), read by part tasks.
final class CancelFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
