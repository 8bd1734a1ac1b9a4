import AWS
import Foundation
import ScanEngine

/// The provider-specific half of a scan: how a worker opens a connection's target, which parts a scan
/// has, and how one part is collected. Claiming, heartbeats, part bookkeeping, rule evaluation, result
/// batches for the findings service and finishing belong to `ScanWorker` and are the same for every
/// provider. A new provider (web, repo, host) implements this and registers one more worker.
protocol ScanProvider: Sendable {
    /// An open target: an authenticated client, and what the provider counts while scanning.
    associatedtype Session: Sendable

    /// The connections' `provider`, and the job subject `vigil.jobs.scan.<name>` its workers take.
    var name: String { get }

    /// Opens the target with the connection's credentials for a scan of `target`; returns the session and
    /// the account (or host, or repository) the results belong to. A `SessionError` with `permanent: true`
    /// fails the scan at once; any other error is retried.
    func open(_ connection: StoredConnection, tenantId: String, target: ScanTarget) async throws -> (session: Session, account: String)

    /// The parts of a scan, planned once per scan: `(service, region)` pairs for AWS.
    func plan(_ target: ScanTarget) -> [(service: String, region: String)]

    /// Collects one part's resources.
    func collect(service: String, region: String, session: Session, width: Int) async throws -> [Resource]

    /// Calls made and retried so far (the scan's statistics).
    func calls(_ session: Session) -> (calls: Int, retries: Int)

    /// Whether a part's failure means the endpoint cannot serve it (`unavailable`, neither pass nor fail).
    func isUnavailable(_ error: any Error) -> Bool

    /// An error as the scan and its parts report it (never a secret).
    func describe(_ error: any Error) -> String
}

/// What a scan was asked to cover.
struct ScanTarget: Sendable {
    var regions: [String]
    var services: [String]
    /// Web scans: `passive`, or `active` (probes with crafted requests; verified domains only).
    var mode: String = "passive"
    /// The scan and its workspace (for providers that report live progress of a part).
    var scanId: String = ""
    var tenantId: String = ""
}

/// AWS accounts: STS (and AssumeRole) to open, one part per service and region (global services once),
/// SigV4 collectors per part.
struct AWSScanProvider: ScanProvider {
    struct Session: Sendable {
        var client: AWSClient
        var account: String
        var counter: CallCounter
        /// Global services (IAM, S3's bucket list) are signed for the scan's first region.
        var homeRegion: String
        /// The workspace's utilisation thresholds, read when the scan starts.
        var policy: ScanPolicy
    }

    let connections: ConnectionHandlers
    var name: String { "aws" }

    func open(_ connection: StoredConnection, tenantId: String, target: ScanTarget) async throws -> (session: Session, account: String) {
        let opened = try await connections.session(connection, tenantId: tenantId)
        let counter = CallCounter()
        var client = opened.client
        client.counter = counter
        let policy = try await ScanPolicyStore(db: connections.store).load(tenantId: tenantId)
        let session = Session(
            client: client, account: opened.account, counter: counter, homeRegion: target.regions.first ?? "us-east-1", policy: policy)
        return (session, opened.account)
    }

    func plan(_ target: ScanTarget) -> [(service: String, region: String)] {
        var planned: [(service: String, region: String)] = []
        for s in target.services {
            guard let c = AWSCollectors.named(s) else { continue }
            if c.global { planned.append((s, "global")) } else { planned += target.regions.map { (s, $0) } }
        }
        return planned
    }

    func collect(service: String, region: String, session: Session, width: Int) async throws -> [Resource] {
        guard let collector = AWSCollectors.named(service) else { throw SessionError(message: "no collector for \(service)", permanent: true) }
        let ctx = CollectContext(
            client: session.client, account: session.account, region: region == "global" ? session.homeRegion : region, width: width,
            policy: session.policy)
        return try await collector.collect(ctx)
    }

    func calls(_ session: Session) -> (calls: Int, retries: Int) { session.counter.snapshot }

    func isUnavailable(_ error: any Error) -> Bool { (error as? AWSError)?.isUnsupportedByEndpoint ?? false }

    func describe(_ error: any Error) -> String { AWSFailure.describe(error) }
}
