import Foundation
import VigilCore

/// Internal: the gateway asks identity who a credential is.
package struct ResolvePrincipalRequest: Codable, Sendable {
    /// `jwt` (signature already verified by the gateway) or `api_key`.
    package var kind: String
    package var userId: String?
    package var sessionTenantId: String?
    package var apiKeyHash: String?
    package var tenantSlug: String?
    package init(kind: String, userId: String? = nil, sessionTenantId: String? = nil, apiKeyHash: String? = nil, tenantSlug: String? = nil) {
        self.kind = kind
        self.userId = userId
        self.sessionTenantId = sessionTenantId
        self.apiKeyHash = apiKeyHash
        self.tenantSlug = tenantSlug
    }
}

/// Internal: identity's token-verification keys.
package struct SigningKeysReply: Codable, Sendable {
    package struct Key: Codable, Sendable {
        package var kid: String
        package var alg: String
        package var publicKey: String
        package init(kid: String, alg: String, publicKey: String) {
            self.kid = kid
            self.alg = alg
            self.publicKey = publicKey
        }
    }
    package var keys: [Key]
    package init(keys: [Key]) { self.keys = keys }
}

/// Endpoints of the identity service.
package enum IdentityAPI {
    package static let resolvePrincipal = Endpoint<ResolvePrincipalRequest, Principal>("vigil.identity.principal.resolve")
    package static let signingKeys = Endpoint<Empty, SigningKeysReply>("vigil.identity.keys.get")
}

/// Core NATS broadcasts of identity (every subscriber gets each message; not persisted).
package enum IdentityBroadcasts {
    /// Sent before identity answers a change that alters who a credential is (key revoked, role
    /// changed, member removed, password changed); gateways drop cached principals that match.
    package static let principalInvalidated = "vigil.identity.principal.invalidated"
    /// Sent by the identity replica that renamed a workspace or changed its settings (after commit), with the
    /// workspace id as the body: every identity replica drops its cached copy (`WorkspaceCache`).
    package static let workspaceChanged = "vigil.identity.workspace.changed"
}

/// Which cached principals to drop; any field that is set matches.
package struct PrincipalInvalidation: Codable, Sendable {
    package var apiKeyId: String?
    package var userId: String?
    package var tenantId: String?
    package init(apiKeyId: String? = nil, userId: String? = nil, tenantId: String? = nil) {
        self.apiKeyId = apiKeyId
        self.userId = userId
        self.tenantId = tenantId
    }
}
