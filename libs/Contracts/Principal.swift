import VigilCore
import Foundation

/// Workspace roles, from most to least powerful; `billing` sees billing only.
package enum Role: String, Codable, Sendable, CaseIterable {
    case owner, admin, analyst, viewer, billing

    /// Rank for "at least" comparisons among owner > admin > analyst > viewer.
    package var rank: Int {
        switch self {
        case .owner: 4
        case .admin: 3
        case .analyst: 2
        case .viewer: 1
        case .billing: 0
        }
    }
}

/// Who is calling, resolved by identity and attached by the gateway as the `Vigil-Principal` header.
package struct Principal: Codable, Sendable, Equatable {
    /// `user` (access token) or `api_key`.
    package var kind: String
    package var userId: String?
    package var apiKeyId: String?
    package var tenantId: String
    package var tenantSlug: String
    package var role: Role
    package var scopes: [String]
    /// When an MSP parent's admin acts in a child workspace: the parent workspace id.
    package var viaParentTenantId: String?

    package init(kind: String, userId: String?, apiKeyId: String?, tenantId: String, tenantSlug: String,
                 role: Role, scopes: [String], viaParentTenantId: String? = nil) {
        self.kind = kind
        self.userId = userId
        self.apiKeyId = apiKeyId
        self.tenantId = tenantId
        self.tenantSlug = tenantSlug
        self.role = role
        self.scopes = scopes
        self.viaParentTenantId = viaParentTenantId
    }

    package var isUser: Bool { kind == "user" }

    /// Who did it, for events and the audit log: the user id, or the API key id.
    package var actorId: String { userId ?? apiKeyId ?? "" }
}

/// Streams and well-known subjects (DESIGN.md §3).
package enum Streams {
    /// Domain events, `vigil.events.<aggregate>.<event>`.
    package static let events = "VIGIL_EVENTS"
    package static let eventSubjects = ["vigil.events.>"]
    /// Work queues, `vigil.jobs.<kind>.<detail>`.
    package static let jobs = "VIGIL_JOBS"
    package static let jobSubjects = ["vigil.jobs.>"]
    /// Emails requested by services, delivered by the notifier.
    package static let emailSend = "vigil.jobs.email.send"
    /// Batches of a scan's results, for the findings service: work (taken once, deleted when done),
    /// not events — every subscriber of `vigil.events.>` (the notifier first) used to receive each
    /// batch of up to hundreds of kilobytes, and the events stream kept them for its whole max age.
    package static let scanResults = "vigil.jobs.findings.results"
    /// Where result batches went before they became work; still ingested, for batches published
    /// by a version before that and not yet consumed.
    package static let legacyScanResults = "vigil.events.scan.results"
}

/// Pagination input shared by every list (keyset `cursor`, or `offset` for compatibility).
package struct PageRequest: Codable, Sendable {
    package var limit: Int?
    package var cursor: String?
    package var offset: Int?
    package init(limit: Int? = nil, cursor: String? = nil, offset: Int? = nil) {
        self.limit = limit
        self.cursor = cursor
        self.offset = offset
    }
}

/// A page of results: `{items, next_cursor, total}`; `total_capped: true` when `total` is only the
/// cap of a bounded count (there are more).
package struct Page<T: Codable & Sendable>: Codable, Sendable {
    package var items: [T]
    package var nextCursor: String?
    package var total: Int?
    package var totalCapped: Bool?
    package init(items: [T], nextCursor: String?, total: Int?, totalCapped: Bool? = nil) {
        self.items = items
        self.nextCursor = nextCursor
        self.total = total
        self.totalCapped = totalCapped
    }

    enum CodingKeys: String, CodingKey { case items, nextCursor, total, totalCapped }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(items, forKey: .items)
        try c.encode(nextCursor, forKey: .nextCursor)
        try c.encodeIfPresent(total, forKey: .total)
        try c.encodeIfPresent(totalCapped, forKey: .totalCapped)
    }
}

extension Page: JSONWritable where T: JSONWritable {
    package func writeJSON(into out: inout String) {
        out.reserveCapacity(out.utf8.count + items.count * 1024)
        out.append("{\"items\":")
        FastJSON.array(items, into: &out)
        out.append(",\"next_cursor\":")
        if let nextCursor { FastJSON.quote(nextCursor, into: &out) } else { out.append("null") }
        if let total { out.append(",\"total\":\(total)") }
        if let totalCapped { out.append(totalCapped ? ",\"total_capped\":true" : ",\"total_capped\":false") }
        out.append("}")
    }
}

/// An email handed to the notifier over `vigil.jobs.email.send`.
package struct EmailRequest: Codable, Sendable {
    package var to: String
    package var template: String
    package var subject: String
    package var text: String
    /// Template values (e.g. `token`, `link`, `workspace_name`).
    package var values: [String: String]
    package init(to: String, template: String, subject: String, text: String, values: [String: String]) {
        self.to = to
        self.template = template
        self.subject = subject
        self.text = text
        self.values = values
    }
}

/// A file a service returns over the bus (report downloads); the gateway sends the raw bytes.
package struct FileReply: Codable, Sendable {
    package var contentType: String
    package var filename: String
    package var contentBase64: String
    package init(contentType: String, filename: String, contentBase64: String) {
        self.contentType = contentType; self.filename = filename; self.contentBase64 = contentBase64
    }
}
