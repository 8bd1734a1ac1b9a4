import Bus
import Contracts
import Foundation
import Logging
import ServiceRuntime
import Store
import VigilCore

/// Starts the scans schedules ask for, on every scan-orchestrator replica with the API role.
///
/// Exactly once: a due schedule is claimed in one transaction that locks it (SKIP LOCKED, so replicas
/// take different rows), records one pending run at the planned time (unique per schedule) and moves
/// `next_run_at` past now. A run is then started under a lock on its row: the scan's id is the run's
/// id, so the quota reservation (keyed by it) and the scan are never doubled, even when a replica dies
/// between the two steps and another picks the pending run up.
///
/// Missed runs (every replica down, or the database) are not replayed as a burst: the first tick after
/// the outage makes one `catch_up` run for the latest due time and schedules the next one after now.
/// A run the plan's quota refuses ends `skipped_quota` with the reason; a run that keeps failing for
/// other reasons (billing unreachable) stays pending and is retried for `retryFor`, then ends `failed`.
struct Scheduler: Sendable {
    let store: Store
    let bus: BusConnection
    let scans: ScanHandlers
    let logger: Logger
    /// A run later than this after its planned time is a catch-up run.
    var lateAfter: TimeInterval = 120
    var retryFor: TimeInterval = 600
    var schedules: ScheduleStore { ScheduleStore(db: store) }

    /// One pass: claim what is due, then start every pending run.
    func tick() async throws {
        _ = try await schedules.claimDue(now: Date(), lateAfter: lateAfter)
        for run in try await schedules.pendingRuns() {
            await start(runId: run.id, tenantId: run.tenantId)
        }
    }

    /// Starts a pending run (no-op when another replica holds it or it is already done).
    func start(runId: String, tenantId: String, eventHeaders: [String: String] = [:]) async {
        do {
            try await store.transaction(.tenant(tenantId), eventHeaders: eventHeaders) { tx in
                guard let (run, s) = try await ScheduleStore.lockPending(tx, runId: runId) else { return }
                let planned = Timestamp.format(run.plannedAt)
                do {
                    let reservation = try await Quotas.reserve(bus, tenantId: tenantId, quota: "scans", ref: run.id)
                    do {
                        _ = try await scans.insertScan(
                            tx, tenantId: tenantId, actor: "schedule:\(s.id)", id: run.id, cid: s.connectionId,
                            req: TriggerScanRequest(connectionId: s.connectionId, regions: s.regions, services: s.services),
                            limits: reservation.limits)
                    } catch {
                        await Quotas.release(bus, tenantId: tenantId, quota: "scans", ref: run.id)
                        throw error
                    }
                    try await ScheduleStore.finishRun(tx, id: run.id, outcome: .started, reason: nil, scanId: run.id)
                    try await tx.emit(
                        Events.scheduleRunStarted, tenantId: tenantId,
                        data: ["schedule_id": s.id, "run_id": run.id, "scan_id": run.id, "trigger": run.trigger, "planned_at": planned])
                } catch let e as ServiceError where e.quota != nil || e.status == 402 {
                    try await ScheduleStore.finishRun(tx, id: run.id, outcome: .skippedQuota, reason: e.message, scanId: nil)
                    try await tx.emit(
                        Events.scheduleRunSkipped, tenantId: tenantId,
                        data: [
                            "schedule_id": s.id, "run_id": run.id, "outcome": RunOutcome.skippedQuota.rawValue, "reason": e.message,
                            "planned_at": planned,
                        ])
                }
            }
        } catch {
            logger.warning("scheduled run not started", metadata: ["run_id": "\(runId)", "error": "\(error)"])
            await giveUpIfStale(runId: runId, tenantId: tenantId, error: error)
        }
    }

    /// Ends a run `failed` once it has been pending for `retryFor`.
    func giveUpIfStale(runId: String, tenantId: String, error: any Error) async {
        let reason = (error as? ServiceError)?.message ?? "\(error)"
        // A refusal (4xx: the connection is gone, a bad setting) will not change; anything else is retried.
        let permanent = (error as? ServiceError).map { (400..<500).contains($0.status) } ?? false
        do {
            try await store.transaction(.tenant(tenantId)) { tx in
                guard let (run, s) = try await ScheduleStore.lockPending(tx, runId: runId),
                    permanent || Date().timeIntervalSince(run.createdAt) > retryFor
                else { return }
                try await ScheduleStore.finishRun(tx, id: runId, outcome: .failed, reason: reason, scanId: nil)
                try await tx.emit(
                    Events.scheduleRunSkipped, tenantId: tenantId,
                    data: [
                        "schedule_id": s.id, "run_id": runId, "outcome": RunOutcome.failed.rawValue, "reason": reason,
                        "planned_at": Timestamp.format(run.plannedAt),
                    ])
            }
        } catch {
            logger.warning("scheduled run outcome not recorded", metadata: ["run_id": "\(runId)", "error": "\(error)"])
        }
    }
}
