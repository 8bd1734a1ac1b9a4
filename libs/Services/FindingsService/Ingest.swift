import Bus
import Contracts
import Foundation
import Logging
import ScanEngine
import ServiceLifecycle
import ServiceRuntime
import Store
import VigilCore

/// A `scan.results` batch without its results, which PostgreSQL reads from the message itself.
struct ResultsBatchHead: Sendable {
    var scanId: String
    var connectionId: String
    var provider: String
    var service: String
    var region: String

    /// The envelope's id and tenant and this head, read with a byte scan: decoding the envelope with
    /// `JSONDecoder` parsed the whole batch (hundreds of kilobytes of results) for five strings.
    /// Nil when one is missing or not a string; PostgreSQL checks the ids' form.
    static func read(_ message: Data) -> (id: String, tenantId: String, head: ResultsBatchHead)? {
        guard
            let (top, d) = JSONHead.read(
                message, keys: ["id", "tenant_id"], nested: "data",
                nestedKeys: ["scan_id", "connection_id", "provider", "service", "region"]),
            let id = top[0], let tenant = top[1], let scan = d[0], let conn = d[1], let provider = d[2], let service = d[3], let region = d[4]
        else { return nil }
        return (id, tenant, ResultsBatchHead(scanId: scan, connectionId: conn, provider: provider, service: service, region: region))
    }
}
struct ScanCompleted: Codable, Sendable {
    var scanId: String
    var connectionId: String
    var status: String
    var complete: Bool
    var parts: [ScanPartReport]
    var resourcesScanned: Int?
    var checksEvaluated: Int?
}

/// Consumes result batches (`vigil.jobs.findings.results`) and `vigil.events.scan.completed` durably. A batch is applied
/// once (its event id is recorded in the same transaction); a completed scan resolves findings only
/// when the scan was complete and every result batch of it has been applied.
struct Ingestor: Sendable {
    let store: Store
    let logger: Logger

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        do {
            switch m.subject {
            case Jobs.findingsResults, Streams.legacyScanResults:
                guard let (id, tenant, head) = ResultsBatchHead.read(m.data) else {
                    logger.error("result batch without its head (id, tenant_id, data.scan_id …) dropped", metadata: ["subject": "\(m.subject)"])
                    return .drop
                }
                try await ingest(head, message: m.data, eventId: id, tenantId: tenant)
                return .ack
            case Events.scanCompleted.subject:
                let env = try JSON.decode(EventEnvelope<ScanCompleted>.self, from: m.data)
                guard let tenant = env.tenantId else { return .drop }
                return try await complete(env.data, tenantId: tenant) ? .ack : .retry(after: .seconds(1))
            default:
                return .ack
            }
        } catch let e as DecodingError {
            logger.error("undecodable scan event dropped", metadata: ["subject": "\(m.subject)", "error": "\(e)"])
            return .drop
        } catch let e as StoreError where e.isDataError {
            // Results PostgreSQL cannot take (not objects, a missing field, an unknown severity):
            // retrying cannot help.
            logger.error("malformed scan results dropped", metadata: ["subject": "\(m.subject)", "error": "\(e)"])
            return .drop
        } catch {
            logger.warning("ingestion failed; will retry", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
            return .retry(after: StreamConsumer.backoff(attempt: m.deliveryCount, cap: .seconds(60)))
        }
    }

    /// Applies one results batch in one statement: the batch is recorded (a redelivery stops
    /// there), rule PASS/FAIL counts, finding upserts (new → open, resolved → reopened; suppression
    /// rules decide whether a new or returning finding starts suppressed) and their lifecycle
    /// events. The results go to PostgreSQL as the message's JSON: no per-finding work in Swift.
    func ingest(_ b: ResultsBatchHead, message: Data, eventId: String, tenantId: String) async throws {
        _ = try await store.transaction(.tenant(tenantId)) { tx in
            try await IngestStore.apply(tx, b, message: message, eventId: eventId, tenantId: tenantId)
        }
    }

    /// Returns false while result batches of the scan are still missing (the message is retried).
    func complete(_ c: ScanCompleted, tenantId: String) async throws -> Bool {
        try await store.transaction(.tenant(tenantId)) { tx in
            if try await IngestStore.isRecorded(tx, scanId: c.scanId, tenantId: tenantId) { return true }
            let completedParts = c.parts.filter { $0.status == "completed" }
            if c.status == "completed" {
                let got = try await IngestStore.resultsPerPart(tx, scanId: c.scanId, tenantId: tenantId)
                for p in completedParts where (got["\(p.service)|\(p.region)"] ?? 0) < p.checks { return false }
            }
            try await IngestStore.record(tx, c, tenantId: tenantId)
            // Only a complete scan resolves, and only what it evaluated: rules it ran, in parts it covered.
            if c.status == "completed" && c.complete && !completedParts.isEmpty {
                try await IngestStore.resolveUnseen(tx, c, parts: completedParts, tenantId: tenantId)
            }
            // Committed with the findings: whoever waits for this reads the scan's final findings.
            try await tx.emit(
                Events.findingsScanIngested, tenantId: tenantId, data: ["scan_id": c.scanId, "connection_id": c.connectionId, "status": c.status])
            return true
        }
    }
}

/// Returns suppressed and risk-accepted findings to `open` when their expiry passes.
struct ExpirySweeper: Sendable {
    let store: Store

    func sweep() async throws -> Int {
        let tenants = try await IngestStore(db: store).tenantsWithExpiredStatus()
        var n = 0
        for t in tenants {
            n += try await store.transaction(.tenant(t)) { tx in try await IngestStore.reopenExpired(tx, tenantId: t) }
        }
        return n
    }
}
