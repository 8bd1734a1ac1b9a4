import Bus
import Contracts
import Foundation
import ServiceRuntime
import Store
import VigilCore

struct ScheduleRequest: Codable, Sendable {
    /// From the path on update.
    var scheduleId: String?
    var name: String?
    var connectionId: String?
    var cron: String?
    var intervalMinutes: Int?
    var timezone: String?
    var enabled: Bool?
    var regions: [String]?
    var services: [String]?
}
struct SchedulePath: Codable, Sendable { var scheduleId: String }
struct ScheduleDeleted: Codable, Sendable { var message: String }
struct ScheduleListRequest: Codable, Sendable {
    var limit: Int?
    var cursor: String?
    var offset: Int?
    var connectionId: String?
}
struct ScheduleRunsRequest: Codable, Sendable {
    var scheduleId: String
    var limit: Int?
    var cursor: String?
    var offset: Int?
}

/// Every `schedules` route: create, list, get, update (PUT, fields left out keep their value), delete,
/// pause, resume, run-now and the run history. The runs themselves are started by `Scheduler`.
struct ScheduleHandlers: Sendable {
    let store: Store
    let scheduler: Scheduler
    var schedules: ScheduleStore { ScheduleStore(db: store) }
    var connections: ConnectionStore { ConnectionStore(db: store) }
    /// Schedules per workspace.
    static let maxPerWorkspace = 200

    func register(on r: ServiceResponder) {
        r.add(Endpoint<ScheduleRequest, ScheduleView>(Subjects.Scans.scheduleCreate), handler: create)
        r.add(Endpoint<ScheduleListRequest, Page<ScheduleView>>(Subjects.Scans.scheduleList), handler: list)
        r.add(Endpoint<SchedulePath, ScheduleView>(Subjects.Scans.scheduleGet)) { q, p, _ in
            guard let s = try await schedules.get(id: try Self.id(q.scheduleId), tenantId: p.tenantId) else {
                throw ServiceError.notFound("schedule")
            }
            return s
        }
        r.add(Endpoint<ScheduleRequest, ScheduleView>(Subjects.Scans.scheduleUpdate), handler: update)
        r.add(Endpoint<SchedulePath, ScheduleDeleted>(Subjects.Scans.scheduleDelete), handler: delete)
        r.add(Endpoint<SchedulePath, ScheduleView>(Subjects.Scans.schedulePause)) { q, p, ctx in try await setEnabled(false, q, p, ctx) }
        r.add(Endpoint<SchedulePath, ScheduleView>(Subjects.Scans.scheduleResume)) { q, p, ctx in try await setEnabled(true, q, p, ctx) }
        r.add(Endpoint<SchedulePath, ScheduleRunView>(Subjects.Scans.scheduleRunNow), handler: runNow)
        r.add(Endpoint<ScheduleRunsRequest, Page<ScheduleRunView>>(Subjects.Scans.scheduleRuns), handler: runs)
    }

    static func id(_ raw: String) throws -> String { try Validate.id(raw, "schedule").lowercased() }

    /// The request's fields over `current` (all of them on create), validated together.
    func fields(_ q: ScheduleRequest, over current: ScheduleStore.Fields?) throws -> ScheduleStore.Fields {
        var issues: [ValidationIssue] = []
        var name = current?.name
        if let n = q.name {
            do { name = try Validate.text(n, path: "body.name", max: 200) } catch let e as ServiceError { issues += e.issues ?? [] }
        } else if current == nil {
            issues.append(.init(path: "body.name", message: "field required"))
        }
        var connectionId = current?.connectionId
        if let c = q.connectionId {
            if ID.isValid(c) { connectionId = c.lowercased() } else { issues.append(.init(path: "body.connection_id", message: "must be a UUID")) }
        } else if current == nil {
            issues.append(.init(path: "body.connection_id", message: "field required"))
        }
        // A new cron replaces an interval and the other way round; the zone is kept unless given.
        var timing = current?.timing
        do {
            if q.cron != nil || q.intervalMinutes != nil || q.timezone != nil || current == nil {
                let keepCron = q.cron == nil && q.intervalMinutes == nil
                timing = try ScheduleTiming(
                    cron: keepCron ? current?.timing.cron?.source : q.cron,
                    intervalMinutes: keepCron ? current?.timing.intervalMinutes : q.intervalMinutes,
                    timezone: q.timezone ?? current?.timing.timezone)
            }
        } catch let e as ServiceError { issues += e.issues ?? [] }
        issues += ScanHandlers.scopeIssues(regions: q.regions, services: q.services)
        guard issues.isEmpty, let name, let connectionId, let timing else { throw ServiceError.validation(issues) }
        return ScheduleStore.Fields(
            name: name, connectionId: connectionId, timing: timing, enabled: q.enabled ?? current?.enabled ?? true,
            regions: q.regions.map { Array(Set($0)).sorted() } ?? current?.regions,
            services: q.services.map { Array(Set($0)).sorted() } ?? current?.services)
    }

    @Sendable func create(_ q: ScheduleRequest, _ p: Principal, _ ctx: CallContext) async throws -> ScheduleView {
        let f = try fields(q, over: nil)
        let id = ID.make()
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await connections.find(tx, id: f.connectionId, tenantId: p.tenantId) != nil else { throw ServiceError.notFound("connection") }
            if try await ScheduleStore.count(tx, tenantId: p.tenantId) >= Self.maxPerWorkspace {
                throw ServiceError.conflict("a workspace has at most \(Self.maxPerWorkspace) schedules", code: "schedule_limit")
            }
            let view = try await schedules.insert(tx, id: id, tenantId: p.tenantId, f, nextRunAt: f.timing.next(after: Date()), by: p.actorId)
            try await tx.emit(
                Events.scheduleCreated, tenantId: p.tenantId, data: ["schedule_id": id, "connection_id": f.connectionId, "actor": p.actorId])
            return view
        }
    }

    @Sendable func list(_ q: ScheduleListRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ScheduleView> {
        let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
        var connectionId: String? = nil
        if let c = q.connectionId {
            guard ID.isValid(c) else { throw ServiceError.validation("query.connection_id", "must be a UUID") }
            connectionId = c.lowercased()
        }
        return try await schedules.list(page, tenantId: p.tenantId, connectionId: connectionId)
    }

    @Sendable func update(_ q: ScheduleRequest, _ p: Principal, _ ctx: CallContext) async throws -> ScheduleView {
        let id = try Self.id(q.scheduleId ?? "")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let (s, name) = try await ScheduleStore.lock(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("schedule") }
            let current = ScheduleStore.Fields(
                name: name, connectionId: s.connectionId, timing: s.timing, enabled: s.enabled, regions: s.regions, services: s.services)
            let f = try fields(q, over: current)
            if f.connectionId != s.connectionId, try await connections.find(tx, id: f.connectionId, tenantId: p.tenantId) == nil {
                throw ServiceError.notFound("connection")
            }
            // A changed timing, or a schedule switched back on, runs next from now.
            let next = f.timing == s.timing && (f.enabled == s.enabled || !f.enabled) ? s.nextRunAt : f.timing.next(after: Date())
            try await ScheduleStore.update(tx, id: id, f, nextRunAt: next)
            try await tx.emit(Events.scheduleUpdated, tenantId: p.tenantId, data: ["schedule_id": id, "actor": p.actorId])
            guard let view = try await ScheduleStore.get(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("schedule") }
            return view
        }
    }

    @Sendable func delete(_ q: SchedulePath, _ p: Principal, _ ctx: CallContext) async throws -> ScheduleDeleted {
        let id = try Self.id(q.scheduleId)
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard try await ScheduleStore.delete(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("schedule") }
            try await tx.emit(Events.scheduleDeleted, tenantId: p.tenantId, data: ["schedule_id": id, "actor": p.actorId])
        }
        return ScheduleDeleted(message: "schedule \(id) deleted with its run history; scans it started are kept")
    }

    /// Pause keeps showing when the next run would be; resume starts from now (no make-up runs).
    func setEnabled(_ enabled: Bool, _ q: SchedulePath, _ p: Principal, _ ctx: CallContext) async throws -> ScheduleView {
        let id = try Self.id(q.scheduleId)
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard let (s, _) = try await ScheduleStore.lock(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("schedule") }
            if s.enabled != enabled {
                try await ScheduleStore.setEnabled(tx, id: id, enabled: enabled, nextRunAt: s.timing.next(after: Date()))
                try await tx.emit(
                    enabled ? Events.scheduleResumed : Events.schedulePaused, tenantId: p.tenantId, data: ["schedule_id": id, "actor": p.actorId])
            }
            guard let view = try await ScheduleStore.get(tx, id: id, tenantId: p.tenantId) else { throw ServiceError.notFound("schedule") }
            return view
        }
    }

    /// A scan now with the schedule's settings, recorded as a `manual` run; the schedule is unchanged.
    @Sendable func runNow(_ q: SchedulePath, _ p: Principal, _ ctx: CallContext) async throws -> ScheduleRunView {
        let id = try Self.id(q.scheduleId)
        let runId = ID.make()
        try await store.transaction(p.scope) { tx in
            guard try await ScheduleStore.lock(tx, id: id, tenantId: p.tenantId) != nil else { throw ServiceError.notFound("schedule") }
            guard try await ScheduleStore.insertRun(tx, id: runId, tenantId: p.tenantId, scheduleId: id, plannedAt: Date(), trigger: .manual) else {
                throw ServiceError.conflict("a run of this schedule was just started", code: "run_in_progress")
            }
        }
        await scheduler.start(runId: runId, tenantId: p.tenantId, eventHeaders: ctx.eventHeaders)
        guard let run = try await store.transaction(p.scope, { try await ScheduleStore.runView($0, id: runId) }) else {
            throw ServiceError.notFound("schedule run")
        }
        return run
    }

    @Sendable func runs(_ q: ScheduleRunsRequest, _ p: Principal, _ ctx: CallContext) async throws -> Page<ScheduleRunView> {
        let id = try Self.id(q.scheduleId)
        let page = try Pagination(PageRequest(limit: q.limit, cursor: q.cursor, offset: q.offset))
        guard try await schedules.get(id: id, tenantId: p.tenantId) != nil else { throw ServiceError.notFound("schedule") }
        return try await schedules.runs(page, scheduleId: id, tenantId: p.tenantId)
    }
}
