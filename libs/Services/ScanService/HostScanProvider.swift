import AWS
import Foundation
import Host
import ScanEngine
import Store
import VigilCore

/// Linux hosts (`provider: "linux"`): audited by the connector installed on the host (`mode: "agent"`)
/// or agentlessly over SSH (`mode: "ssh"`), with the same collectors and rules either way. A scan has
/// one part, the host.
struct HostScanProvider: ScanProvider {
    struct Session: Sendable {
        var tenantId: String
        var connectionId: String
        var scanLabel: String
        var mode: Mode
        var counter: CallCounter
    }
    enum Mode: Sendable {
        case agent(connectorId: String)
        case ssh(SSHTarget)
    }

    let store: Store
    let connectors: ConnectorStore
    let connections: ConnectionHandlers
    let settings: ConnectorSettings
    var name: String { "linux" }
    /// Resources one audit may return (a bound on what an agent can make the scan store).
    static let maxResources = 20_000

    func open(_ connection: StoredConnection, tenantId: String, target: ScanTarget) async throws -> (session: Session, account: String) {
        let s = connection.settings
        switch s.mode ?? "agent" {
        case "agent":
            guard let cid = s.connectorId, let c = try await connectors.usable(id: cid, tenantId: tenantId) else {
                throw SessionError(
                    message: "the connection's connector is revoked or unknown; enroll a connector and update the connection", permanent: true)
            }
            return (
                Session(
                    tenantId: tenantId, connectionId: connection.view.id, scanLabel: c.hostname, mode: .agent(connectorId: cid),
                    counter: CallCounter()),
                c.hostname
            )
        case "ssh":
            let target = try await connections.sshTarget(connection, tenantId: tenantId)
            return (
                Session(tenantId: tenantId, connectionId: connection.view.id, scanLabel: target.host, mode: .ssh(target), counter: CallCounter()),
                target.host
            )
        default:
            throw SessionError(message: "unknown connection mode \(s.mode ?? "")", permanent: true)
        }
    }

    func plan(_ target: ScanTarget) -> [(service: String, region: String)] { [("host", target.regions.first ?? "host")] }

    func collect(service: String, region: String, session: Session, width: Int) async throws -> [Resource] {
        let result: ConnectorProtocol.AuditResult
        switch session.mode {
        case .agent(let connectorId): result = try await viaConnector(connectorId, session)
        case .ssh(let target): result = try await viaSSH(target, session)
        }
        // Whatever the agent sent, the resources are this host's and of the host provider's types.
        return result.resources.prefix(Self.maxResources).filter { $0.type.hasPrefix("host.") }.map { r in
            var r = r
            r.provider = HostCollectors.provider
            r.account = session.scanLabel
            r.region = region
            if !r.id.hasPrefix(session.scanLabel + ":") { r.id = session.scanLabel + ":" + r.id }
            return r
        }
    }

    /// Queues a `host_audit` job for the connector and waits for its result.
    func viaConnector(_ connectorId: String, _ session: Session) async throws -> ConnectorProtocol.AuditResult {
        let jobId = ID.make()
        try await store.transaction(.tenant(session.tenantId)) { tx in
            try await ConnectorStore.enqueue(
                tx, id: jobId, tenantId: session.tenantId, connectorId: connectorId, scanId: nil, kind: "host_audit", parameters: [:])
        }
        let deadline = ContinuousClock.now + .seconds(settings.jobTimeout)
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            if let s = try await connectors.state(jobId: jobId, tenantId: session.tenantId) {
                switch s.status {
                case "completed":
                    guard let data = s.result else { throw SessionError(message: "the connector's result is empty", permanent: true) }
                    return try JSON.decode(ConnectorProtocol.AuditResult.self, from: data)
                case "failed": throw SessionError(message: "the connector could not audit the host: \(s.error ?? "unknown error")", permanent: true)
                case "cancelled": throw SessionError(message: s.error ?? "the connector job was cancelled", permanent: true)
                default: break
                }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        try? await connectors.cancel(jobId: jobId, tenantId: session.tenantId, reason: "no result within \(settings.jobTimeout) s")
        throw SessionError(message: "the connector sent no result within \(settings.jobTimeout) s; is it online?", permanent: true)
    }

    /// Audits over SSH; the first scan pins the host key it saw (trust on first use), later scans
    /// refuse any other key.
    func viaSSH(_ target: SSHTarget, _ session: Session) async throws -> ConnectorProtocol.AuditResult {
        do {
            let (result, key) = try await SSHGatherer(target: target).audit()
            if target.hostKey == nil, let key {
                try await connections.connections.pinHostKey(id: session.connectionId, tenantId: session.tenantId, hostKey: key)
            }
            return result
        } catch let e as SSHAuditError {
            throw SessionError(message: e.message, permanent: e.kind != .unreachable)
        }
    }

    func calls(_ session: Session) -> (calls: Int, retries: Int) { session.counter.snapshot }

    func isUnavailable(_ error: any Error) -> Bool { false }

    func describe(_ error: any Error) -> String {
        switch error {
        case let e as SessionError: return e.message
        case let e as ServiceError: return e.message
        default: return "\(error)"
        }
    }
}
