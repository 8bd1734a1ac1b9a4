import AWS
import Foundation
import Net
import ScanEngine
import VigilCore
import Web

/// Web targets (`provider: "web"`): a passive scan of one URL — transport, TLS, headers, cookies,
/// CORS, exposed files, content and secrets — within the scan's time and request limits. One part: the site.
///
/// | key | default | meaning |
/// |---|---|---|
/// | VIGIL_WEB_SCAN_SECONDS | 30 | time limit of one web scan |
/// | VIGIL_WEB_SCAN_REQUESTS | 150 | requests one web scan may send |
struct WebScanProvider: ScanProvider {
    struct Session: Sendable {
        var target: WebTarget
        var host: String
        var counter: CallCounter
        var active: Bool
    }

    let guardrail: SSRFGuard
    let limits: WebLimits
    var name: String { "web" }

    func open(_ connection: StoredConnection, tenantId: String, target: ScanTarget) async throws -> (session: Session, account: String) {
        let s = connection.settings
        guard let url = s.url, let host = URL(string: url)?.host else {
            throw SessionError(message: "the connection has no url", permanent: true)
        }
        return (
            Session(
                target: WebTarget(url: url, caPem: s.caPem, headers: s.headers, scanPaths: s.scanPaths, httpPort: s.httpPort), host: host,
                counter: CallCounter(), active: target.mode == "active"),
            host
        )
    }

    func plan(_ target: ScanTarget) -> [(service: String, region: String)] { [("web", "global")] }

    func collect(service: String, region: String, session: Session, width: Int) async throws -> [Resource] {
        let (guardrail, limits, target, active) = (self.guardrail, self.limits, session.target, session.active)
        do {
            let outcome = try await Blocking.run { try WebScan.run(target, guardrail: guardrail, limits: limits, active: active) }
            session.counter.add(count: outcome.requests)
            return outcome.resources
        } catch let e as NetError {
            // Nothing answered at the URL (refused by the guard, no such host, no HTTP): the scan fails with why.
            throw SessionError(message: "the site could not be scanned: \(e.description)", permanent: true)
        }
    }

    func calls(_ session: Session) -> (calls: Int, retries: Int) { session.counter.snapshot }

    func isUnavailable(_ error: any Error) -> Bool { false }

    func describe(_ error: any Error) -> String {
        switch error {
        case let e as SessionError: return e.message
        case let e as NetError: return e.description
        default: return "\(error)"
        }
    }
}
