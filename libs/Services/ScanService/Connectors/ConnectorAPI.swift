import AWS
import Bus
import Contracts
import Foundation
import Host
import Logging
import ServiceRuntime
import Store
import VigilCore
import VigilCrypto

/// A signed connector call as the gateway forwards it: the exact body bytes, the signing headers,
/// the method, path and path parameters.
struct SignedRequest: Codable, Sendable {
    var rawBase64: String
    var headers: [String: String]
    var method: String?
    var path: String?
    var params: [String: String]?
}

/// The `connector-api` routes the agent calls: `register` (the enrollment token in the body is the
/// credential), then `heartbeat`, `jobs/poll` and `jobs/{id}/result`, each signed with the connector's
/// secret (see `ConnectorProtocol`). Every refused credential, signature, timestamp or nonce gets the
/// same 401, so a caller learns nothing about which check failed.
struct ConnectorAPI: Sendable {
    let store: Store
    let settings: ConnectorSettings
    let vault: CredentialVault
    let logger: Logger
    var connectors: ConnectorStore { ConnectorStore(db: store, onlineWithin: settings.onlineWithin) }
    static let secretPrefix = "vcs_"
    static let refused = ServiceError(status: 401, error: "unauthorized", message: "connector authentication failed")

    func register(on r: ServiceResponder) {
        r.add(Endpoint<ConnectorProtocol.RegisterRequest, ConnectorProtocol.RegisterReply>(Subjects.Scans.connectorApiRegister), handler: enroll)
        r.add(Endpoint<SignedRequest, ConnectorProtocol.HeartbeatReply>(Subjects.Scans.connectorApiHeartbeat), handler: heartbeat)
        r.add(Endpoint<SignedRequest, ConnectorProtocol.PollReply>(Subjects.Scans.connectorApiPoll), handler: poll)
        r.add(Endpoint<SignedRequest, ConnectorProtocol.JobResultReply>(Subjects.Scans.connectorApiResult), handler: result)
    }

    // MARK: secrets

    struct SealedSecret: Codable {
        var connectorId: String
        var tenantId: String
        var secret: String
    }

    func seal(_ secret: String, connectorId: String, tenantId: String) throws -> Data {
        Data(
            Sodium.seal(Array(try JSON.encode(SealedSecret(connectorId: connectorId, tenantId: tenantId, secret: secret))), to: vault.keys.publicKey))
    }

    func open(_ sealed: Data, connectorId: String, tenantId: String) -> String? {
        guard let plain = vault.keys.open(Array(sealed)), let s = try? JSON.decode(SealedSecret.self, from: Data(plain)),
            s.connectorId == connectorId, s.tenantId == tenantId
        else { return nil }
        return s.secret
    }

    /// Checks a signed call; returns the connector, its workspace and the body.
    func authenticate(_ r: SignedRequest) async throws -> (connectorId: String, tenantId: String, body: Data) {
        let h = r.headers
        guard let rawId = h[ConnectorProtocol.connectorHeader], ID.isValid(rawId), let ts = h[ConnectorProtocol.timestampHeader],
            let t = Int(ts), abs(Int(Date().timeIntervalSince1970) - t) <= ConnectorProtocol.maxSkew,
            let nonce = h[ConnectorProtocol.nonceHeader], ConnectorProtocol.isValidNonce(nonce),
            let sig = h[ConnectorProtocol.signatureHeader], sig.hasPrefix("v1="), let body = Data(base64Encoded: r.rawBase64),
            let method = r.method, let path = r.path
        else { throw Self.refused }
        let id = rawId.lowercased()
        guard let cred = try await connectors.credentials(id: id), !cred.revoked,
            let secret = open(cred.sealed, connectorId: id, tenantId: cred.tenantId)
        else { throw Self.refused }
        let text = ConnectorProtocol.canonical(
            method: method, path: path, timestamp: ts, nonce: nonce, bodySHA256Hex: Sodium.hex(Sodium.sha256(Array(body))))
        let expected = Sodium.hex(Sodium.hmacSHA256(key: Array(secret.utf8), message: Array(text.utf8)))
        guard Sodium.constantTimeEqual(expected, String(sig.dropFirst(3)).lowercased()) else { throw Self.refused }
        // Last, so a forged call cannot burn a real connector's nonce.
        guard try await connectors.useNonce(connectorId: id, nonce: nonce) else { throw Self.refused }
        return (id, cred.tenantId, body)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: Data) throws -> T {
        if body.isEmpty || body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return try JSON.decodeRequest(type, from: Data("{}".utf8))
        }
        return try JSON.decodeRequest(type, from: body)
    }

    // MARK: routes

    @Sendable func enroll(_ q: ConnectorProtocol.RegisterRequest, _ ctx: CallContext) async throws -> ConnectorProtocol.RegisterReply {
        guard SecretToken.isWellFormed(q.enrollmentToken, prefix: ConnectorHandlers.tokenPrefix) else { throw Self.refused }
        let name = try Validate.text(q.name, path: "body.name", max: 100)
        let hostname = try Validate.text(q.hostname, path: "body.hostname", max: 255)
        let version = try Validate.text(q.version, path: "body.version", max: 64)
        let id = ID.make()
        let secret = SecretToken.generate(prefix: Self.secretPrefix)
        let enrolled: Bool = try await store.transaction(.crossTenant, eventHeaders: ctx.eventHeaders) { tx in
            guard let e = try await ConnectorStore.useEnrollment(tx, tokenHash: SecretToken.hash(q.enrollmentToken)) else { return false }
            try await ConnectorStore.insertConnector(
                tx, tenantId: e.tenantId,
                .init(
                    id: id, enrollmentId: e.id, name: name, hostname: hostname, version: version,
                    sealedSecret: try seal(secret, connectorId: id, tenantId: e.tenantId)))
            try await tx.emit(
                Events.connectorRegistered, tenantId: e.tenantId,
                data: ["connector_id": id, "enrollment_id": e.id, "hostname": hostname, "version": version])
            return true
        }
        guard enrolled else { throw Self.refused }
        return ConnectorProtocol.RegisterReply(
            connectorId: id, connectorSecret: secret, heartbeatIntervalSeconds: settings.heartbeat, pollIntervalSeconds: max(1, settings.pollWait))
    }

    @Sendable func heartbeat(_ r: SignedRequest, _ ctx: CallContext) async throws -> ConnectorProtocol.HeartbeatReply {
        let (id, tenant, body) = try await authenticate(r)
        let h = try Self.decode(ConnectorProtocol.Heartbeat.self, body)
        var facts: [String: String] = [:]
        for (k, v) in (h.facts ?? [:]).sorted(by: { $0.key < $1.key }).prefix(50) where k.count <= 64 { facts[k] = String(v.prefix(512)) }
        let beat = ConnectorStore.HeartbeatFacts(
            version: String(h.version.prefix(64)), hostname: h.hostname.map { String($0.prefix(255)) }, facts: facts,
            load: h.load.map { Array($0.prefix(3)) })
        try await connectors.heartbeat(id: id, tenantId: tenant, beat)
        if Int.random(in: 0..<50) == 0 { try? await connectors.pruneNonces(olderThan: 2 * ConnectorProtocol.maxSkew) }
        return ConnectorProtocol.HeartbeatReply(status: "online", serverTime: Date(), heartbeatIntervalSeconds: settings.heartbeat)
    }

    /// Long poll: hands out the oldest queued job, or waits (bounded) for one.
    @Sendable func poll(_ r: SignedRequest, _ ctx: CallContext) async throws -> ConnectorProtocol.PollReply {
        let (id, tenant, body) = try await authenticate(r)
        let q = try Self.decode(ConnectorProtocol.PollRequest.self, body)
        let wait = min(max(0, q.waitSeconds ?? settings.pollWait), settings.pollWait)
        let deadline = ContinuousClock.now + .seconds(wait)
        while true {
            if let j = try await connectors.claimNext(connectorId: id, tenantId: tenant) {
                return ConnectorProtocol.PollReply(
                    job: .init(id: j.id, kind: j.kind, parameters: j.parameters, issuedAt: j.at), pollIntervalSeconds: max(1, settings.pollWait))
            }
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        return ConnectorProtocol.PollReply(job: nil, pollIntervalSeconds: max(1, settings.pollWait))
    }

    @Sendable func result(_ r: SignedRequest, _ ctx: CallContext) async throws -> ConnectorProtocol.JobResultReply {
        let (id, tenant, body) = try await authenticate(r)
        guard let raw = r.params?["job_id"], ID.isValid(raw) else { throw ServiceError.notFound("job") }
        let jobId = raw.lowercased()
        let q = try Self.decode(ConnectorProtocol.JobResult.self, body)
        guard ["completed", "failed"].contains(q.status) else { throw ServiceError.validation("body.status", "must be completed or failed") }
        return try await store.transaction(.tenant(tenant)) { tx in
            guard let job = try await ConnectorStore.lockJob(tx, id: jobId, connectorId: id) else { throw ServiceError.notFound("job") }
            // A result for a finished job (a retry) is acknowledged with the state it has.
            guard job.status == "dispatched" else {
                guard job.status != "queued" else {
                    throw ServiceError.conflict("the job was not handed to this connector yet", code: "job_not_dispatched")
                }
                return .init(jobId: jobId, status: job.status, chunksReceived: job.chunkCount ?? 1, chunkCount: job.chunkCount ?? 1)
            }
            if q.status == "failed" {
                try await ConnectorStore.finish(tx, jobId: jobId, status: "failed", result: nil, error: String((q.error ?? "failed").prefix(2000)))
                return .init(jobId: jobId, status: "failed", chunksReceived: 0, chunkCount: 0)
            }
            guard let data = q.data else { throw ServiceError.validation("body.data", "field required for a completed job") }
            let count = q.chunkCount ?? 1
            guard (1...4096).contains(count) else { throw ServiceError.validation("body.chunk_count", "must be between 1 and 4096") }
            if count == 1 {
                try await complete(tx, jobId: jobId, text: data, sha256: q.sha256)
                return .init(jobId: jobId, status: "completed", chunksReceived: 1, chunkCount: 1)
            }
            guard let index = q.chunkIndex, (0..<count).contains(index) else {
                throw ServiceError.validation("body.chunk_index", "must be between 0 and chunk_count - 1")
            }
            guard let sha = q.sha256, sha.count == 64 else {
                throw ServiceError.validation("body.sha256", "chunked results need the SHA-256 of the whole")
            }
            if let c = job.chunkCount, c != count || job.sha256 != sha.lowercased() {
                throw ServiceError.conflict("chunk_count or sha256 differ from the job's earlier chunks", code: "chunk_mismatch")
            }
            let have = try await ConnectorStore.addChunk(
                tx, jobId: jobId, tenantId: tenant, index: index, count: count, sha256: sha.lowercased(), data: data)
            guard have == count else { return .init(jobId: jobId, status: "receiving", chunksReceived: have, chunkCount: count) }
            try await complete(tx, jobId: jobId, text: try await ConnectorStore.chunks(tx, jobId: jobId), sha256: sha)
            return .init(jobId: jobId, status: "completed", chunksReceived: count, chunkCount: count)
        }
    }

    /// Checks the whole result (hash, and that it is an audit result) and stores it.
    func complete(_ tx: Transaction, jobId: String, text: String, sha256: String?) async throws {
        let data = Data(text.utf8)
        if let sha256, Sodium.hex(Sodium.sha256(Array(data))) != sha256.lowercased() {
            throw ServiceError.validation("body.sha256", "does not match the result")
        }
        guard (try? JSON.decode(ConnectorProtocol.AuditResult.self, from: data)) != nil else {
            throw ServiceError.validation("body.data", "is not an audit result")
        }
        try await ConnectorStore.finish(tx, jobId: jobId, status: "completed", result: data, error: nil)
    }
}
