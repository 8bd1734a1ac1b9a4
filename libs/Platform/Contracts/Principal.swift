import Foundation
import VigilCore

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

    package init(
        kind: String, userId: String?, apiKeyId: String?, tenantId: String, tenantSlug: String,
        role: Role, scopes: [String], viaParentTenantId: String? = nil
    ) {
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

/// Who may call a REST-routed subject (declared on its route in `scripts/gen-contracts.py`).
package enum Access: Sendable, Equatable {
    /// No credentials needed (and any given are ignored).
    case `public`
    /// Credentials optional: the principal is attached when present and valid.
    case optional
    /// Any member of the selected workspace, whatever the role.
    case member
    /// At least this role (owner > admin > analyst > viewer).
    case role(Role)
}
