import AWS
import Bus
import Contracts
import Foundation
import Logging
import Net
import Repo
import ScanEngine
import ServiceRuntime
import Store
import Synchronization
import VigilCore

struct FixCreateRequest: Codable, Sendable {
    var repositoryId: String
    var findingIds: [String]?
    var title: String?
    var instructions: String?
    var sourceRepo: String?
    var sourceRepoProvider: String?
    var sourceScanBranch: String?
    var options: FixOptions?
}
struct FixPath: Codable, Sendable {
    var repositoryId: String
    var fixId: String
}
struct FixListRequest: Codable, Sendable {
    var repositoryId: String
    var findingId: String?
    var limit: Int?
    var skip: Int?
}
struct FixDiffRequest: Codable, Sendable {
    var repositoryId: String
    var fixId: String
    var reveal: Bool?
}
struct FixRefineRequest: Codable, Sendable {
    var repositoryId: String
    var fixId: String
    var instructions: String?
    var options: FixOptions?
}
struct PullRequestRequest: Codable, Sendable {
    var repositoryId: String
    var fixId: String
    var title: String?
    var body: String?
    var branchName: String?
}
struct PullRequestView: Codable, Sendable {
    var branchName: String
    var baseBranch: String
    var commit: String
    var remote: String
    var provider: String
    var state: String
    var url: String?
    var number: Int?
    var title: String
    var createdAt: Date
    /// Why the forge did not open the pull request (the branch is pushed).
    var forgeError: String? = nil
}
struct FixView: Codable, Sendable {
    var id: String
    var repositoryId: String
    var findingIds: [String]
    var title: String
    var instructions: String
    var options: FixOptions
    var status: String
    var sourceRepo: String?
    var sourceScanBranch: String?
    var baseCommit: String?
    var filesChanged: [String]
    var outcomes: [FixOutcome]
    var steps: Int
    var attempts: Int
    var error: String?
    var createdBy: String
    var createdAt: Date
    var startedAt: Date?
    var completedAt: Date?
    var lastActivityAt: Date?
    var pullRequests: [PullRequestView]
}
struct FixDiffView: Codable, Sendable {
    var fixId: String
    var status: String
    var diff: String?
    var redacted: Bool
    var filesChanged: [String]
}
struct FixProgressView: Codable, Sendable {
    var fixId: String
    var status: String
    var phase: String?
    var steps: Int
    var elapsedSeconds: Double
    var startedAt: Date?
    var completedAt: Date?
    var lastActivityAt: Date?
    var secondsSinceActivity: Double?
}
struct PullRequestsCreated: Codable, Sendable {
    var fixId: String
    var pullRequests: [PullRequestView]
}
/// `vigil.jobs.repository.fix`.
struct RepoFixJob: Codable, Sendable {
    var fixId: String
    var tenantId: String
}
struct FixFindingRef: Codable, Sendable { var findingId: String }
/// What the findings service says about a finding a fix is asked for.
struct FixFindingInfo: Codable, Sendable {
    var id: String
    var ruleCode: String
    var status: String
    var resourceId: String
    var resourceType: String
    var connectionId: String
    var evidence: [String: JSONValue]
}

/// Every statement on `scans.repo_fixes`. The patch a fix produced removes secrets, so it holds them: it is
/// kept sealed (libsodium, bound to the workspace and the fix); the diff shown by default is redacted.
struct FixStore: Sendable {
    let db: Store

    static func view(_ r: Row) throws -> FixView {
        FixView(
            id: try r.string("id"), repositoryId: try r.string("connection_id"), findingIds: try r.stringArray("finding_ids"),
            title: try r.string("title"), instructions: try r.string("instructions"), options: try r.json("options"),
            status: try r.string("status"), sourceRepo: r.optionalString("source_repo"), sourceScanBranch: r.optionalString("source_scan_branch"),
            baseCommit: r.optionalString("base_commit"), filesChanged: try r.stringArray("files_changed"), outcomes: try r.json("outcomes"),
            steps: try r.int("steps"), attempts: try r.int("attempts"), error: r.optionalString("error"), createdBy: try r.string("created_by"),
            createdAt: try r.date("created_at"), startedAt: r.optionalDate("started_at"), completedAt: r.optionalDate("completed_at"),
            lastActivityAt: r.optionalDate("last_activity_at"), pullRequests: try r.json("pull_requests"))
    }

    func find(_ tenantId: String, id: String, repositoryId: String? = nil) async throws -> Row? {
        try await db.query(
            .tenant(tenantId), "SELECT * FROM scans.repo_fixes WHERE id = $1 AND tenant_id = $2 AND ($3::uuid IS NULL OR connection_id = $3)",
            [id, tenantId, repositoryId]
        ).first
    }
}

/// Fixes of repository findings (reference 002): requested through the API, run by a worker from
/// `vigil.jobs.repository.fix` in a scratch clone of the mirror, pushed as a new branch on request.
struct RepoFixHandlers: Sendable {
    let repositories: RepositoryHandlers
    let bus: BusConnection?
    var store: Store { repositories.connections.store }
    var settings: ScanSettings { repositories.connections.settings }
    var fixes: FixStore { FixStore(db: store) }
    static let active = ["pending", "running"]

    func register(on r: ServiceResponder) {
        r.add(Endpoint<FixListRequest, SkipPage<FixView>>(Subjects.Scans.repositoryFixList), handler: list)
        r.add(Endpoint<FixCreateRequest, FixView>(Subjects.Scans.repositoryFixCreate), handler: create)
        r.add(Endpoint<FixPath, FixView>(Subjects.Scans.repositoryFixGet), handler: get)
        r.add(Endpoint<FixDiffRequest, FixDiffView>(Subjects.Scans.repositoryFixDiff), handler: diff)
        r.add(Endpoint<FixPath, FixProgressView>(Subjects.Scans.repositoryFixProgress), handler: progress)
        r.add(Endpoint<FixRefineRequest, FixView>(Subjects.Scans.repositoryFixRefine), handler: refine)
        r.add(Endpoint<FixPath, FixView>(Subjects.Scans.repositoryFixCancel), handler: cancel)
        r.add(Endpoint<PullRequestRequest, PullRequestsCreated>(Subjects.Scans.repositoryFixPullRequests), handler: pullRequests)
    }

    func load(_ q: FixPath, _ p: Principal) async throws -> (StoredConnection, Row) {
        let c = try await repositories.repository(q.repositoryId, p)
        let id = try Validate.id(q.fixId, "fix")
        guard let row = try await fixes.find(p.tenantId, id: id, repositoryId: c.view.id) else { throw ServiceError.notFound("fix") }
        return (c, row)
    }

    static func validate(_ o: FixOptions?) throws -> FixOptions {
        guard let o else { return FixOptions() }
        var issues: [ValidationIssue] = []
        for (fid, name) in o.envNames ?? [:] {
            if !ID.isValid(fid) { issues.append(.init(path: "body.options.env_names", message: "keys must be finding ids")) }
            if name.firstMatch(of: /^[A-Za-z_][A-Za-z0-9_]{0,63}$/) == nil {
                issues.append(.init(path: "body.options.env_names", message: "\(String(name.prefix(70))) is not an environment variable name"))
            }
        }
        if let e = o.envExample,
            e.isEmpty || e.count > 200 || e.hasPrefix("/") || e.hasPrefix("-") || e.split(separator: "/").contains("..") || e.contains("\0")
                || e.hasPrefix(".git/")
        {
            issues.append(.init(path: "body.options.env_example", message: "must be a relative path inside the repository"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        return FixOptions(
            envNames: o.envNames.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key.lowercased(), $0.value) }) }, envExample: o.envExample)
    }

    @Sendable func create(_ q: FixCreateRequest, _ p: Principal, _ ctx: CallContext) async throws -> FixView {
        let c = try await repositories.repository(q.repositoryId, p)
        let title = try Validate.text(q.title ?? "", path: "body.title", max: 200)
        let instructions = try Validate.text(q.instructions ?? "", path: "body.instructions", max: 4000)
        guard let ids = q.findingIds, !ids.isEmpty else {
            throw ServiceError.validation("body.finding_ids", "field required: the findings to fix (1 to 50)")
        }
        guard ids.count <= 50 else { throw ServiceError.validation("body.finding_ids", "at most 50 findings per fix") }
        guard ids.allSatisfy(ID.isValid) else { throw ServiceError.validation("body.finding_ids", "must be finding ids (UUIDs)") }
        if let b = q.sourceScanBranch, !RepoPush.validBranch(b) { throw ServiceError.validation("body.source_scan_branch", "must be a branch name") }
        if let r = q.sourceRepo, r.isEmpty || r.count > 300 { throw ServiceError.validation("body.source_repo", "must be owner/name") }
        let options = try Self.validate(q.options)
        if c.settings.archived == true { throw ServiceError.conflict("the repository is archived", code: "repository_archived") }
        guard let bus else { throw ServiceError(status: 503, error: "unavailable", message: "the findings service cannot be reached") }
        var targets: [FixTarget] = []
        for fid in Array(Set(ids.map { $0.lowercased() })).sorted() {
            let f: FixFindingInfo
            do {
                f = try await bus.request(
                    Endpoint<FixFindingRef, FixFindingInfo>(Subjects.Findings.findingGet), FixFindingRef(findingId: fid), context: ctx,
                    timeout: .seconds(10))
            } catch let e as ServiceError where e.status == 404 {
                throw ServiceError.validation("body.finding_ids", "finding \(fid) not found")
            }
            guard f.connectionId == c.view.id else { throw ServiceError.validation("body.finding_ids", "finding \(fid) is not in this repository") }
            guard f.resourceType == "repo.secret" || f.resourceType == "repo.dependency" else {
                throw ServiceError(
                    status: 422, error: "no_fix_action", message: "finding \(fid) (\(f.ruleCode)) has no automatic fix; follow its remediation steps")
            }
            guard f.status == "open" else {
                throw ServiceError.conflict("finding \(fid) is \(f.status); only open findings are fixed", code: "finding_not_open")
            }
            let e = RepoEvidence(f.evidence)
            let digest = f.resourceId.split(separator: "#").last.map(String.init)
            var category: String? = nil
            if case .string(let s)? = f.evidence["category"] { category = s }
            targets.append(
                FixTarget(
                    findingId: fid, checkId: f.ruleCode, file: e.file ?? "", line: e.line, digest: digest, detector: e.detector, category: category,
                    inHistoryOnly: e.inHistoryOnly ?? false, dependency: f.resourceType == "repo.dependency" ? e.dependency : nil))
        }
        let id = ID.make()
        let findingIds = targets.map(\.findingId)
        let row = try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let row = try await tx.single(
                """
                INSERT INTO scans.repo_fixes (id, tenant_id, connection_id, finding_ids, title, instructions, options, targets, source_repo,
                  source_scan_branch, status, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11) RETURNING *
                """,
                [
                    id, p.tenantId, c.view.id, findingIds, title, instructions, try JSONParameter(options), try JSONParameter(targets), q.sourceRepo,
                    q.sourceScanBranch, p.actorId,
                ])
            try await tx.emit(Jobs.repositoryFix, type: "repository.fix.job", tenantId: p.tenantId, data: RepoFixJob(fixId: id, tenantId: p.tenantId))
            try await tx.emit(
                Events.repositoryFixRequested, tenantId: p.tenantId,
                data: ["fix_id": id, "repository_id": c.view.id, "findings": findingIds.joined(separator: ","), "actor": p.actorId])
            return row
        }
        return try FixStore.view(row)
    }

    @Sendable func list(_ q: FixListRequest, _ p: Principal, _ ctx: CallContext) async throws -> SkipPage<FixView> {
        let c = try await repositories.repository(q.repositoryId, p)
        let (limit, skip) = try Pagination.limitSkip(q.limit, q.skip)
        if let f = q.findingId, !ID.isValid(f) { throw ServiceError.validation("query.finding_id", "must be a finding id (UUID)") }
        let rows = try await store.query(
            p.scope,
            """
            SELECT *, count(*) OVER () AS total FROM scans.repo_fixes
            WHERE tenant_id = $1 AND connection_id = $2 AND ($3::text IS NULL OR $3 = ANY (finding_ids))
            ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5
            """, [p.tenantId, c.view.id, q.findingId?.lowercased(), limit, skip])
        var total = try rows.first?.int("total") ?? 0
        if rows.isEmpty && skip > 0 {
            total = try await store.single(
                p.scope, "SELECT count(*) AS n FROM scans.repo_fixes WHERE tenant_id = $1 AND connection_id = $2", [p.tenantId, c.view.id]
            ).int("n")
        }
        return SkipPage(items: try rows.map(FixStore.view), total: total, limit: limit, skip: skip)
    }

    @Sendable func get(_ q: FixPath, _ p: Principal, _ ctx: CallContext) async throws -> FixView {
        try FixStore.view(try await load(q, p).1)
    }

    /// The redacted diff; `reveal=true` (admin or owner, audited) opens the sealed patch, which applies with `git apply`.
    @Sendable func diff(_ q: FixDiffRequest, _ p: Principal, _ ctx: CallContext) async throws -> FixDiffView {
        let (c, row) = try await load(FixPath(repositoryId: q.repositoryId, fixId: q.fixId), p)
        let v = try FixStore.view(row)
        guard v.status == "completed" else { return FixDiffView(fixId: v.id, status: v.status, diff: nil, redacted: true, filesChanged: []) }
        guard q.reveal == true else {
            return FixDiffView(fixId: v.id, status: v.status, diff: row.optionalString("diff_redacted"), redacted: true, filesChanged: v.filesChanged)
        }
        guard p.role.rank >= Role.admin.rank else {
            throw ServiceError(status: 403, error: "forbidden", message: "revealing a fix's secrets needs the admin or owner role")
        }
        let patch = try settings.vault.open(blob: try row.bytes("patch_sealed"), tenantId: p.tenantId, scope: "repo-fix|\(v.id)")
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            try await tx.emit(
                Events.repositoryFixDiffRevealed, tenantId: p.tenantId, data: ["fix_id": v.id, "repository_id": c.view.id, "actor": p.actorId])
        }
        return FixDiffView(fixId: v.id, status: v.status, diff: String(decoding: patch, as: UTF8.self), redacted: false, filesChanged: v.filesChanged)
    }

    @Sendable func progress(_ q: FixPath, _ p: Principal, _ ctx: CallContext) async throws -> FixProgressView {
        let row = try await load(q, p).1
        let v = try FixStore.view(row)
        let now = Date()
        let elapsed = v.startedAt.map { (v.completedAt ?? now).timeIntervalSince($0) } ?? 0
        return FixProgressView(
            fixId: v.id, status: v.status, phase: row.optionalString("phase"), steps: v.steps, elapsedSeconds: (elapsed * 10).rounded() / 10,
            startedAt: v.startedAt, completedAt: v.completedAt, lastActivityAt: v.lastActivityAt,
            secondsSinceActivity: v.lastActivityAt.map { (now.timeIntervalSince($0) * 10).rounded() / 10 })
    }

    @Sendable func cancel(_ q: FixPath, _ p: Principal, _ ctx: CallContext) async throws -> FixView {
        let (c, row) = try await load(q, p)
        let id = try row.string("id")
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            guard
                let r = try await tx.one(
                    """
                    UPDATE scans.repo_fixes SET status = 'canceled', completed_at = now(), last_activity_at = now(), phase = NULL
                    WHERE id = $1 AND status IN ('pending', 'running') RETURNING *
                    """, [id])
            else {
                throw ServiceError.conflict(
                    "the fix is \(try row.string("status")); only a pending or running fix can be canceled", code: "fix_not_active")
            }
            try await tx.emit(
                Events.repositoryFixCanceled, tenantId: p.tenantId, data: ["fix_id": id, "repository_id": c.view.id, "actor": p.actorId])
            return try FixStore.view(r)
        }
    }

    /// A finished fix runs again with the follow-up instructions appended and the options changed.
    @Sendable func refine(_ q: FixRefineRequest, _ p: Principal, _ ctx: CallContext) async throws -> FixView {
        let (c, row) = try await load(FixPath(repositoryId: q.repositoryId, fixId: q.fixId), p)
        let more = try Validate.text(q.instructions ?? "", path: "body.instructions", max: 4000)
        let current = try FixStore.view(row)
        var options = current.options
        if let o = q.options {
            let given = try Self.validate(o)
            if let names = given.envNames { options.envNames = (options.envNames ?? [:]).merging(names) { $1 } }
            if let e = given.envExample { options.envExample = e }
        }
        guard !Self.active.contains(current.status) else {
            throw ServiceError.conflict("the fix is \(current.status); refine it once it has finished", code: "fix_active")
        }
        guard current.pullRequests.isEmpty else {
            throw ServiceError.conflict("the fix was pushed already; request a new fix", code: "fix_pushed")
        }
        let instructions = String((current.instructions + "\n\n" + more).suffix(16000))
        return try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            let r = try await tx.single(
                """
                UPDATE scans.repo_fixes SET status = 'pending', instructions = $2, options = $3, attempts = 0, steps = 0, phase = NULL, error = NULL,
                  patch_sealed = NULL, diff_redacted = NULL, files_changed = '{}', outcomes = '[]', base_commit = NULL, started_at = NULL,
                  completed_at = NULL, last_activity_at = now()
                WHERE id = $1 RETURNING *
                """, [current.id, instructions, try JSONParameter(options)])
            try await tx.emit(
                Jobs.repositoryFix, type: "repository.fix.job", tenantId: p.tenantId, data: RepoFixJob(fixId: current.id, tenantId: p.tenantId))
            try await tx.emit(
                Events.repositoryFixRequested, tenantId: p.tenantId,
                data: ["fix_id": current.id, "repository_id": c.view.id, "findings": current.findingIds.joined(separator: ","), "actor": p.actorId])
            return try FixStore.view(r)
        }
    }

    /// Pushes the completed fix as a new branch of the repository's remote and records the pull request.
    @Sendable func pullRequests(_ q: PullRequestRequest, _ p: Principal, _ ctx: CallContext) async throws -> PullRequestsCreated {
        let (c, row) = try await load(FixPath(repositoryId: q.repositoryId, fixId: q.fixId), p)
        let v = try FixStore.view(row)
        guard v.status == "completed", let base = v.baseCommit else {
            throw ServiceError.conflict("the fix is \(v.status); pull requests are opened for completed fixes", code: "fix_not_completed")
        }
        let branch = q.branchName ?? "vigil/fix-\(v.id.prefix(8))"
        guard RepoPush.validBranch(branch) else { throw ServiceError.validation("body.branch_name", "must be a branch name") }
        let title = try q.title.map { try Validate.text($0, path: "body.title", max: 200) } ?? v.title
        if let b = q.body, b.count > 20000 { throw ServiceError.validation("body.body", "at most 20000 characters") }
        guard !v.pullRequests.contains(where: { $0.branchName == branch }) else {
            throw ServiceError.conflict("the fix was pushed to \(branch) already", code: "pull_request_exists")
        }
        let (target, _, _) = try RepoScanProvider.target(c, tenantId: p.tenantId, settings: settings)
        let patch = String(
            decoding: try settings.vault.open(blob: try row.bytes("patch_sealed"), tenantId: p.tenantId, scope: "repo-fix|\(v.id)"), as: UTF8.self)
        let policy = settings.repoPolicy
        let seconds = settings.repoLimits.seconds
        let message = title + "\n\n" + (q.body ?? v.outcomes.map { "- \($0.file): \($0.message)" }.joined(separator: "\n")) + "\n"
        let (defaultBranch, commit): (String, String)
        do {
            (defaultBranch, commit) = try await Blocking.run { () throws -> (String, String) in
                let deadline = Date().addingTimeInterval(seconds)
                let (branchName, _) = try GitMirror.sync(target, policy: policy, deadline: deadline)
                let commit = try RepoPush.push(
                    target, policy: policy, base: base, patch: patch, branch: branch, defaultBranch: branchName, message: message, deadline: deadline)
                return (branchName, commit)
            }
        } catch let e as RepoError {
            throw ServiceError(status: 422, error: "push_failed", message: "the branch could not be pushed: \(e.message)")
        }
        var pr = PullRequestView(
            branchName: branch, baseBranch: defaultBranch, commit: commit, remote: RepoScanProvider.displayName(target.cloneURL), provider: "git",
            state: "branch_pushed", url: nil, number: nil, title: title, createdAt: Date())
        // On a known forge, with a token: open the pull request through its API (the branch stays pushed either way).
        if let (forge, project) = Forge.identify(target.cloneURL, settings.forges), let token = target.token {
            let http = OutboundHTTP(guardrail: SSRFGuard(allowLoopback: policy.allowLocal, allowPrivate: policy.allowLocal), timeout: 20)
            let body = q.body ?? message
            do {
                let opened = try await Blocking.run {
                    try Forge.open(forge, project: project, token: token, branch: branch, base: defaultBranch, title: title, body: body, http: http)
                }
                pr.provider = opened.provider
                pr.state = "open"
                pr.url = opened.url
                pr.number = opened.number
            } catch {
                pr.provider = forge.kind
                pr.forgeError = "the branch is pushed; opening the pull request failed: \((error as? RepoError)?.message ?? "\(error)")"
            }
        }
        try await store.transaction(p.scope, eventHeaders: ctx.eventHeaders) { tx in
            _ = try await tx.execute(
                "UPDATE scans.repo_fixes SET pull_requests = pull_requests || $2::jsonb, last_activity_at = now() WHERE id = $1",
                [v.id, try JSONParameter([pr])])
            try await tx.emit(
                Events.repositoryPullRequestCreated, tenantId: p.tenantId,
                data: ["fix_id": v.id, "repository_id": c.view.id, "branch_name": branch, "url": pr.url ?? "", "actor": p.actorId])
        }
        return PullRequestsCreated(fixId: v.id, pullRequests: [pr])
    }
}

/// Runs fix jobs: claims the fix, makes the change in a scratch clone of the mirror, stores the sealed patch and
/// the redacted diff. A cancel seen by the heartbeat stops it between steps; a redelivered job re-runs it.
struct RepoFixWorker: Sendable {
    let store: Store
    let settings: ScanSettings
    let logger: Logger
    let ackWait: Duration
    static let maxAttempts = 3

    func consumerConfig() -> JetStream.ConsumerConfig {
        var c = JetStream.ConsumerConfig(durable: "repo-fix-workers", filterSubject: Jobs.repositoryFix)
        c.ackWait = ackWait
        c.maxDeliver = 100
        return c
    }

    final class Activity: Sendable {
        let state = Mutex<(phase: String, steps: Int, canceled: Bool)>(("queued", 0, false))
    }

    struct Canceled: Error {}

    @Sendable func handle(_ m: JetStreamMessage) async -> ConsumeOutcome {
        guard let env = try? JSON.decode(JobEnvelope<RepoFixJob>.self, from: m.data), ID.isValid(env.data.fixId), ID.isValid(env.data.tenantId)
        else {
            logger.error("undecodable repository fix job dropped")
            return .drop
        }
        let job = env.data
        let scope = TenantScope.tenant(job.tenantId)
        // This run's id: a run that lost the fix (canceled, refined, claimed again after a redelivery) writes nothing.
        let run = ID.make()
        do {
            guard
                let row = try await store.query(
                    scope,
                    """
                    UPDATE scans.repo_fixes SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()),
                      last_activity_at = now(), phase = 'fetching', run_id = $3
                    WHERE id = $1 AND tenant_id = $2 AND status IN ('pending', 'running') RETURNING *
                    """, [job.fixId, job.tenantId, run]
                ).first
            else { return .ack }
            let attempts = try row.int("attempts")
            let connectionId = try row.string("connection_id")
            guard attempts <= Self.maxAttempts else {
                try await finish(
                    job, connectionId, status: "failed", error: "the fix failed \(attempts - 1) times: " + (row.optionalString("error") ?? ""),
                    run: run)
                return .ack
            }
            guard let conn = try await ConnectionStore(db: store).find(id: connectionId, tenantId: job.tenantId) else {
                try await finish(job, connectionId, status: "failed", error: "the repository was deleted", run: run)
                return .ack
            }
            let targets = try row.json("targets", as: [FixTarget].self)
            let options = try row.json("options", as: FixOptions.self)
            let title = try row.string("title")
            let (target, key, _) = try RepoScanProvider.target(conn, tenantId: job.tenantId, settings: settings)
            let (policy, seconds) = (settings.repoPolicy, settings.repoLimits.seconds)
            let activity = Activity()
            let heartbeat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(500))
                    if Task.isCancelled { break }
                    try? m.inProgress()
                    let (phase, steps, _) = activity.state.withLock { $0 }
                    let status = try? await store.query(
                        scope,
                        """
                        UPDATE scans.repo_fixes SET phase = $2, steps = $3, last_activity_at = now()
                        WHERE id = $1 AND status = 'running' AND run_id = $4 RETURNING id
                        """, [job.fixId, phase, steps, run])
                    if status?.isEmpty == true { activity.state.withLock { $0.canceled = true } }
                }
            }
            defer { heartbeat.cancel() }
            let outcome: Result<(String, FixResult), any Error> = await Blocking.run {
                Result {
                    let deadline = Date().addingTimeInterval(seconds)
                    let (_, head) = try GitMirror.sync(target, policy: policy, deadline: deadline)
                    let result = try RepoFix.run(
                        mirror: target.mirrorDir, head: head, targets: targets, options: options, title: title, digestKey: key, deadline: deadline
                    ) { phase in
                        let canceled = activity.state.withLock { s -> Bool in
                            s.phase = phase.hasPrefix("rewrite") ? "rewriting" : phase
                            s.steps += 1
                            return s.canceled
                        }
                        if canceled { throw Canceled() }
                    }
                    return (head, result)
                }
            }
            heartbeat.cancel()
            switch outcome {
            case .success(let (head, result)):
                let sealed = try settings.vault.seal(blob: Data(result.patch.utf8), tenantId: job.tenantId, scope: "repo-fix|\(job.fixId)")
                let steps = activity.state.withLock { $0.steps }
                try await store.transaction(scope) { tx in
                    guard
                        try await tx.one(
                            """
                            UPDATE scans.repo_fixes SET status = 'completed', phase = NULL, steps = $2, base_commit = $3, patch_sealed = $4,
                              diff_redacted = $5, files_changed = $6, outcomes = $7, error = NULL, completed_at = now(), last_activity_at = now()
                            WHERE id = $1 AND status = 'running' AND run_id = $8 RETURNING id
                            """, [job.fixId, steps, head, sealed, result.redacted, result.files, try JSONParameter(result.outcomes), run]) != nil
                    else { return }
                    try await tx.emit(
                        Events.repositoryFixCompleted, tenantId: job.tenantId,
                        data: [
                            "fix_id": job.fixId, "repository_id": connectionId, "status": "completed", "files": result.files.joined(separator: ","),
                        ])
                }
                return .ack
            case .failure(let error):
                if error is Canceled { return .ack }
                let message = (error as? RepoError)?.message ?? "\(error)"
                if let e = error as? RepoError, !e.permanent, attempts < Self.maxAttempts {
                    _ = try? await store.query(
                        scope, "UPDATE scans.repo_fixes SET error = $2 WHERE id = $1 AND run_id = $3", [job.fixId, message, run])
                    return .retry(after: StreamConsumer.backoff(attempt: attempts, cap: .seconds(30)))
                }
                try await finish(job, connectionId, status: "failed", error: message, run: run)
                return .ack
            }
        } catch {
            logger.warning("repository fix attempt failed", metadata: ["fix_id": "\(job.fixId)", "error": "\(error)"])
            return .retry(after: .seconds(2))
        }
    }

    func finish(_ job: RepoFixJob, _ connectionId: String, status: String, error: String, run: String? = nil) async throws {
        try await store.transaction(.tenant(job.tenantId)) { tx in
            guard
                try await tx.one(
                    """
                    UPDATE scans.repo_fixes SET status = $2, error = $3, phase = NULL, completed_at = now(), last_activity_at = now()
                    WHERE id = $1 AND status IN ('pending', 'running') AND ($4::uuid IS NULL OR run_id = $4) RETURNING id
                    """, [job.fixId, status, String(error.prefix(2000)), run]) != nil
            else { return }
            try await tx.emit(
                Events.repositoryFixCompleted, tenantId: job.tenantId,
                data: ["fix_id": job.fixId, "repository_id": connectionId, "status": status, "files": ""])
        }
    }
}
