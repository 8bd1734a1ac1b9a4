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
        package var kid: String; package var alg: String; package var publicKey: String
        package init(kid: String, alg: String, publicKey: String) { self.kid = kid; self.alg = alg; self.publicKey = publicKey }
    }
    package var keys: [Key]
    package init(keys: [Key]) { self.keys = keys }
}

/// Endpoints of the identity service.
package enum IdentityAPI {
    package static let resolvePrincipal = Endpoint<ResolvePrincipalRequest, Principal>("vigil.identity.principal.resolve")
    package static let signingKeys = Endpoint<Empty, SigningKeysReply>("vigil.identity.keys.get")
}

