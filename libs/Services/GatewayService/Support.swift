import Bus
import Contracts
import Foundation
import Logging
import Synchronization
import VigilCore
import VigilCrypto
import Yams

/// Identity's public keys, fetched over the bus and cached; refetched (at most every 10 s) when a
/// token does not verify, which picks up key rotation.
final class VerificationKeys: Sendable {
    let bus: BusConnection
    private let state = Mutex<(keys: [[UInt8]], fetchedAt: ContinuousClock.Instant?)>(([], nil))

    init(bus: BusConnection) { self.bus = bus }

    func verify(_ token: String) async -> AccessClaims? {
        let (cached, fetchedAt) = state.withLock { ($0.keys, $0.fetchedAt) }
        for k in cached { if let c = JWT.verify(token, publicKey: k) { return c } }
        if let fetchedAt, ContinuousClock.now - fetchedAt < .seconds(10) { return nil }
        guard let reply = try? await bus.request(IdentityAPI.signingKeys, Empty(), context: CallContext(), timeout: .seconds(5)) else {
            return nil
        }
        let keys = reply.keys.compactMap { Base64URL.decode($0.publicKey) }
        state.withLock { $0 = (keys, ContinuousClock.now) }
        for k in keys { if let c = JWT.verify(token, publicKey: k) { return c } }
        return nil
    }
}

/// `Idempotency-Key` records in a JetStream KV bucket with a 24 h TTL: the first response is
/// replayed; the same key with a different request is a 409; a key still in flight is a 409.
struct IdempotencyStore: Sendable {
    let bucket: KeyValueBucket

    enum Start: Sendable {
        case proceed
        case replay(status: Int, body: Data)
    }

    struct Record: Codable, Sendable {
        var state: String
        var fingerprint: String
        var status: Int?
        var body: String?
    }

    static func slot(scope: String, method: String, path: String, key: String) -> String {
        "idem." + SecretToken.hash("\(scope)\n\(method)\n\(path)\n\(key)")
    }

    func begin(slot: String, fingerprint: String) async throws -> Start {
        for _ in 0..<2 {
            if let data = try await bucket.get(slot), !data.isEmpty, let rec = try? JSON.decode(Record.self, from: data) {
                guard rec.fingerprint == fingerprint else {
                    throw ServiceError.conflict("Idempotency-Key was already used with a different request", code: "idempotency_key_reused")
                }
                guard rec.state == "done", let status = rec.status else {
                    throw ServiceError.conflict("a request with this Idempotency-Key is still in progress", code: "idempotency_in_progress")
                }
                return .replay(status: status, body: Data(base64Encoded: rec.body ?? "") ?? Data())
            }
            let pending = try JSON.encode(Record(state: "pending", fingerprint: fingerprint))
            if try await bucket.create(slot, pending) { return .proceed }
        }
        throw ServiceError.conflict("a request with this Idempotency-Key is still in progress", code: "idempotency_in_progress")
    }

    func finish(slot: String, fingerprint: String, status: Int, body: Data) async throws {
        try await bucket.put(slot, JSON.encode(Record(state: "done", fingerprint: fingerprint, status: status, body: body.base64EncodedString())))
    }

    func abandon(slot: String) async throws { try await bucket.delete(slot) }
}

/// Loads `contracts/openapi.yaml` and converts it to JSON for `/api/v1/openapi.json`.
enum OpenAPIDocument {
    static func candidates(explicit: String?) -> [String] {
        if let explicit { return [explicit] }
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        var out = [FileManager.default.currentDirectoryPath + "/contracts/openapi.yaml"]
        var dir = exe
        for _ in 0..<5 {
            out.append(dir.appendingPathComponent("contracts/openapi.yaml").path)
            dir = dir.deletingLastPathComponent()
        }
        return out
    }

    static func load(explicitPath: String?, logger: Logger) -> Data? {
        for path in candidates(explicit: explicitPath) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            do {
                guard let yaml = try Yams.load(yaml: text) else { continue }
                return try JSONSerialization.data(withJSONObject: jsonSafe(yaml), options: [.sortedKeys, .withoutEscapingSlashes])
            } catch {
                logger.error("cannot parse OpenAPI document", metadata: ["path": "\(path)", "error": "\(error)"])
                return nil
            }
        }
        logger.warning("OpenAPI document not found; /api/v1/openapi.json will answer 404")
        return nil
    }

    /// YAML maps may have non-string keys (status codes); JSON needs strings.
    static func jsonSafe(_ v: Any) -> Any {
        switch v {
        case let d as [AnyHashable: Any]:
            var out: [String: Any] = [:]
            for (k, val) in d { out["\(k.base)"] = jsonSafe(val) }
            return out
        case let a as [Any]: return a.map(jsonSafe)
        case let d as Date: return Timestamp.format(d)
        default: return v
        }
    }
}
