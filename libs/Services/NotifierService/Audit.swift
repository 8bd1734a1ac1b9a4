import Bus
import Contracts
import Foundation
import Logging
import ServiceRuntime
import Store
import VigilCore

/// Turns every domain event into an append-only audit record (idempotent by event id).
struct AuditRecorder: Sendable {
    let store: Store
    let logger: Logger

    /// Lifecycle changes made by scans (no actor) are in the finding events feed, not the audit log.
    static func records(_ e: NotifierEvent) -> Bool { !(e.type.hasPrefix("finding.") && e.actor == nil) }

    func handle(_ e: NotifierEvent) async -> ConsumeOutcome {
        let (id, type, tenant, actor, m) = (e.id, e.type, e.tenant, e.actor, e.message)
        guard Self.records(e) else { return .ack }
        let data = e.data
        let resourceType = String(type.split(separator: ".").first ?? "event")
        let resourceId = (data["\(resourceType)_id"] ?? data["api_key_id"] ?? data["id"] ?? data["workspace_id"]) as? String
        let changes = data.filter { !["actor"].contains($0.key) }
        do {
            let changesJSON = try JSONSerialization.data(withJSONObject: changes, options: [.sortedKeys])
            try await AuditStore(db: store).append(
                .init(
                    id: id, tenantId: tenant, occurredAt: e.occurredAt, actor: actor, action: type, resourceType: resourceType,
                    resourceId: resourceId, correlationId: m.headers[BusHeader.correlationId], ip: m.headers[BusHeader.clientAddress],
                    userAgent: m.headers[BusHeader.userAgent], changes: changesJSON))
            return .ack
        } catch {
            logger.warning("audit insert failed; will retry", metadata: ["error": "\(error)"])
            return .retry(after: .seconds(2))
        }
    }
}

struct AuditQuery: Codable, Sendable {
    var action: String?
    var resourceType: String?
    var actor: String?
    var since: Date?
    var until: Date?
    var limit: Int?
    var cursor: String?
    var offset: Int?
}

struct AuditRecord: Codable, Sendable {
    var id: String
    var at: Date
    var actor: String?
    var action: String
    var resourceType: String
    var resourceId: String?
    var workspace: String?
    var correlationId: String?
    var ip: String?
    var userAgent: String?
    var changes: JSONObject
}

/// Free-form JSON object passed through as is.
struct JSONObject: Codable, Sendable {
    let raw: Data
    init(raw: Data) { self.raw = raw }
    init(from decoder: any Decoder) throws { raw = Data("{}".utf8) }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        let obj = (try? JSONSerialization.jsonObject(with: raw)) as? [String: Any] ?? [:]
        try c.encode(obj.mapValues { AnyJSON($0) })
    }
}

/// Encodes JSONSerialization values.
struct AnyJSON: Encodable {
    let value: Any
    init(_ v: Any) { value = v }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case let v as String: try c.encode(v)
        case let v as Bool where type(of: value) == Bool.self: try c.encode(v)
        case let v as Int: try c.encode(v)
        case let v as Double: try c.encode(v)
        case let v as [Any]: try c.encode(v.map(AnyJSON.init))
        case let v as [String: Any]: try c.encode(v.mapValues(AnyJSON.init))
        default: try c.encodeNil()
        }
    }
}
