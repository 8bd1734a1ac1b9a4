import AWS
import Foundation
import Repo
import ScanEngine
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// Git repositories (`provider: "repo"`): a bare mirror per repository kept by the workers and fetched
/// incrementally, then a secrets scan of the default branch's tree and every commit of every branch and tag.
/// One part per scan type (`secrets`, `sbom`, `semgrep`).
struct RepoScanProvider: ScanProvider {
    struct Session: Sendable {
        var target: RepoTarget
        var digestKey: [UInt8]
        var account: String
        var counter: CallCounter
        var scanId: String
        var tenantId: String
    }

    let settings: ScanSettings
    /// Where a running part's live progress is written (`scans.scan_parts.live`), once a second.
    let store: Store
    var name: String { "repo" }
    var scanTypes: [String] { settings.repoScanTypes }

    func open(_ connection: StoredConnection, tenantId: String, target: ScanTarget) async throws -> (session: Session, account: String) {
        let (repo, key, account) = try Self.target(connection, tenantId: tenantId, settings: settings)
        return (
            Session(target: repo, digestKey: key, account: account, counter: CallCounter(), scanId: target.scanId, tenantId: target.tenantId),
            account
        )
    }

    /// Where a repository is cloned from (with its opened credentials), its mirror, the key its secrets are
    /// digested with (the same secret gets the same digest across this repository's scans and fixes, and a
    /// different one elsewhere), and its display name.
    static func target(
        _ connection: StoredConnection, tenantId: String, settings: ScanSettings
    ) throws -> (target: RepoTarget, digestKey: [UInt8], account: String) {
        let s = connection.settings
        guard let url = s.cloneUrl else { throw SessionError(message: "the repository has no clone_url", permanent: true) }
        let creds = try settings.vault.open(connection.sealedCredentials, tenantId: tenantId, connectionId: connection.view.id)
        let id = connection.view.id
        return (
            RepoTarget(
                cloneURL: url, defaultBranch: s.defaultBranch, token: creds.token, sshKey: creds.privateKey,
                mirrorDir: settings.repoMirrors + "/" + tenantId + "/" + id + ".git"),
            settings.vault.keys.derivedKey("repo-secret-digest|\(tenantId)|\(id)"), RepoScanProvider.displayName(url)
        )
    }

    /// `host/owner/name` of a clone URL (no credentials), for display and as the findings' account.
    static func displayName(_ url: String) -> String {
        var s = url
        if let r = s.range(of: "://") { s = String(s[r.upperBound...]) }
        if let at = s.firstIndex(of: "@"), !s[..<at].contains("/") { s = String(s[s.index(after: at)...]) }
        s = s.replacingOccurrences(of: ":", with: "/")
        if s.hasSuffix(".git") { s = String(s.dropLast(4)) }
        return String(s.prefix(200))
    }

    func plan(_ target: ScanTarget) -> [(service: String, region: String)] {
        let types = target.services.filter { scanTypes.contains($0) }
        return (types.isEmpty ? ["secrets"] : types).map { ($0, "global") }
    }

    func collect(service: String, region: String, session: Session, width: Int) async throws -> [Resource] {
        let (policy, limits, osv, semgrep) = (settings.repoPolicy, settings.repoLimits, settings.osv, settings.semgrep)
        let (target, key, account) = (session.target, session.digestKey, session.account)
        let progress = RepoProgress()
        let live = liveProgress(progress, session: session, service: service)
        defer { live.cancel() }
        let outcome = try await Blocking.run { () throws -> (resources: [Resource], files: Int) in
            let deadline = Date().addingTimeInterval(limits.seconds)
            let (branch, head) = try GitMirror.sync(target, policy: policy, deadline: deadline)
            progress.update {
                $0.phase = service == "secrets" ? "walking_history" : service == "sbom" ? "checking_lockfiles" : "running_semgrep"
                $0.percent = 10
            }
            let git = Git(policy: policy, deadline: deadline)
            if service == "semgrep", let semgrep {
                let resources = try RepoSemgrepScan.run(
                    mirror: target.mirrorDir, branch: branch, head: head, semgrep: semgrep, account: account, deadline: deadline)
                return (resources, resources.count)
            }
            if service == "sbom" {
                let sbom = try RepoSBOMScan.run(dir: target.mirrorDir, branch: branch, head: head, git: git, osv: osv, account: account)
                return (sbom.resources, sbom.components)
            }
            var (resources, stats) = try RepoSecretsScan.run(
                dir: target.mirrorDir, branch: branch, head: head, git: git, limits: limits, digestKey: key, account: account, progress: progress)
            // The repository itself: what was read (shown by the scan's progress and results).
            resources.append(
                Resource(
                    provider: "repo", account: account, region: "global", service: "repo", type: "repo.repository", id: "repo:\(account)",
                    name: account,
                    attributes: [
                        "branch": .string(branch), "head": .string(head), "commits": .number(Double(stats.commits)),
                        "tree_files": .number(Double(stats.treeFiles)), "files_scanned": .number(Double(stats.blobsScanned)),
                        "bytes_scanned": .number(Double(stats.bytesScanned)), "skipped_large": .number(Double(stats.skippedLarge)),
                        "skipped_binary": .number(Double(stats.skippedBinary)), "secrets": .number(Double(stats.secrets)),
                    ]))
            return (resources, stats.blobsScanned)
        }
        session.counter.add(count: outcome.files)
        return outcome.resources
    }

    /// Writes the part's live progress once a second while it runs, from its first second on (best effort: a failed
    /// write is retried next tick).
    func liveProgress(_ progress: RepoProgress, session: Session, service: String) -> Task<Void, Never> {
        Task { [store] in
            guard ID.isValid(session.scanId), ID.isValid(session.tenantId) else { return }
            var last: RepoProgress.State? = nil
            while !Task.isCancelled {
                // A part that ends within the first second writes nothing (most re-scans).
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                let now = progress.snapshot
                if now != last, let json = try? JSONParameter(now) {
                    _ = try? await store.query(
                        .tenant(session.tenantId), "UPDATE scans.scan_parts SET live = $3 WHERE scan_id = $1 AND service = $2 AND tenant_id = $4",
                        [session.scanId, service, json, session.tenantId])
                    last = now
                }
            }
        }
    }

    func calls(_ session: Session) -> (calls: Int, retries: Int) { session.counter.snapshot }

    func isUnavailable(_ error: any Error) -> Bool { false }

    func describe(_ error: any Error) -> String {
        switch error {
        case let e as RepoError: return e.message
        case let e as SessionError: return e.message
        default: return "\(error)"
        }
    }
}

extension ConnectionHandlers {
    /// `settings: {clone_url, default_branch?, archived?}`, `credentials: {token?} | {private_key?}`.
    func validateRepo(
        _ given: ConnectionSettings?, _ creds: ConnectionCredentials?
    ) async throws -> (
        creds: ConnectionCredentials, masked: [String: String], settings: ConnectionSettings
    ) {
        var issues: [ValidationIssue] = []
        let url = given?.cloneUrl?.trimmingCharacters(in: .whitespaces) ?? ""
        if url.isEmpty {
            issues.append(.init(path: "body.settings.clone_url", message: "field required"))
        } else {
            do { _ = try settings.repoPolicy.parse(url) } catch { issues.append(.init(path: "body.settings.clone_url", message: "\(error)")) }
        }
        if let b = given?.defaultBranch,
            b.isEmpty || b.count > 200 || b.hasPrefix("-") || b.contains("..") || b.contains(where: { $0.isWhitespace || "~^:?*[\\".contains($0) })
        {
            issues.append(.init(path: "body.settings.default_branch", message: "must be a branch name"))
        }
        var out = ConnectionCredentials()
        var masked: [String: String] = [:]
        if let t = creds?.token {
            if t.isEmpty || t.count > 1024 || t.contains(where: { $0.isWhitespace }) {
                issues.append(.init(path: "body.credentials.token", message: "must be a token of 1 to 1024 characters without spaces"))
            }
            out.token = t
            masked["token"] = String(t.prefix(4)) + "****"
        }
        if let k = creds?.privateKey {
            if !k.contains("PRIVATE KEY-----") || k.utf8.count > 16384 {
                issues.append(.init(path: "body.credentials.private_key", message: "must be an SSH private key (PEM or OpenSSH format)"))
            }
            out.privateKey = k
            masked["private_key"] = "****"
        }
        if out.token != nil && out.privateKey != nil {
            issues.append(.init(path: "body.credentials", message: "give a token (HTTPS) or a private_key (SSH), not both"))
        }
        guard issues.isEmpty else { throw ServiceError.validation(issues) }
        let policy = settings.repoPolicy
        do { try await Blocking.run { try policy.check(url) } } catch { throw ServiceError.validation("body.settings.clone_url", "\(error)") }
        var s = ConnectionSettings()
        s.cloneUrl = url
        s.defaultBranch = given?.defaultBranch
        s.archived = given?.archived
        return (out, masked, s)
    }

    /// `git ls-remote` with the stored credentials: reachable, and the branch exists.
    func testRepo(_ c: StoredConnection, tenantId: String) async -> ConnectionTestReply {
        guard let url = c.settings.cloneUrl else { return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: "no clone_url") }
        let policy = settings.repoPolicy
        do {
            let creds = try settings.vault.open(c.sealedCredentials, tenantId: tenantId, connectionId: c.view.id)
            let heads = try await Blocking.run { () throws -> Int in
                try policy.check(url)
                var git = Git(policy: policy, deadline: Date().addingTimeInterval(30))
                if let t = creds.token { git.authorization(token: t) }
                let out = try git.output(["ls-remote", "--heads", "--", url])
                return out.split(separator: 10).count
            }
            return ConnectionTestReply(
                ok: true, accountId: RepoScanProvider.displayName(url), arn: nil, message: "reachable: \(heads) branch\(heads == 1 ? "" : "es")")
        } catch {
            return ConnectionTestReply(ok: false, accountId: nil, arn: nil, message: "\(error)")
        }
    }
}
