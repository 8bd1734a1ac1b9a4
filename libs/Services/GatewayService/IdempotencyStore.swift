import Bus
import Contracts
import Foundation
import Logging
import Synchronization
import VigilCore
import VigilCrypto
import Yams

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
