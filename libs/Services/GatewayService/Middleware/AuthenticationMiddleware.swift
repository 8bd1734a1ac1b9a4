import Bus
import Contracts
import Hummingbird
import VigilCore
import VigilCrypto

/// Resolves the credential to a principal (an Ed25519 access token verified here, or an API key; identity
/// answers who it is, cached briefly) and enforces the route's access: public routes ignore credentials,
/// optional ones attach a valid principal, the rest need one with the route's role, and an API key also
/// needs the `read` or `write` scope for the method.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let route: Route
    let keys: VerificationKeys
    let principals: PrincipalCache
    let bus: BusConnection
    let timeout: Duration

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        context.principal = try await authenticate(request, context)
        return try await next(request, context)
    }

    func authenticate(_ request: Request, _ context: GatewayContext) async throws -> PrincipalCache.Resolved? {
        if route.access == .public { return nil }
        guard let credential = context.credential, !credential.value.isEmpty else {
            if route.access == .optional { return nil }
            throw ServiceError.unauthorized("send a bearer token or an API key (Authorization: Bearer … or x-api-key)")
        }
        if credential.fromCookie && route.isMutating { try DashboardSession.checkCSRF(request) }
        let slug = request.headers[.tenantSlug]
        let resolve: ResolvePrincipalRequest
        if JWT.looksLikeJWT(credential.value) {
            guard let claims = await keys.verify(credential.value) else {
                throw ServiceError(status: 401, error: "invalid_token", message: "access token is invalid or expired")
            }
            resolve = ResolvePrincipalRequest(kind: "jwt", userId: claims.sub, sessionTenantId: claims.tid, tenantSlug: slug)
        } else if SecretToken.isWellFormed(credential.value, prefix: SecretToken.apiKeyPrefix) {
            resolve = ResolvePrincipalRequest(kind: "api_key", apiKeyHash: credential.hash, tenantSlug: slug)
        } else {
            throw ServiceError(status: 401, error: "invalid_token", message: "credential is neither a valid access token nor an API key")
        }
        let cacheKey = credential.hash + "|" + (slug ?? "")
        let resolved: PrincipalCache.Resolved
        if let cached = principals.entries.get(cacheKey) {
            resolved = cached.value
            if cached.refresh {
                Task {
                    do {
                        _ = try await resolveAndCache(resolve, key: cacheKey, context)
                    } catch let e as ServiceError where e.status == 401 || e.status == 403 {
                        principals.entries.invalidate(cacheKey)
                    } catch {
                        principals.entries.refreshFailed(cacheKey)
                    }
                }
            }
        } else {
            resolved = try await resolveAndCache(resolve, key: cacheKey, context)
        }
        let principal = resolved.principal
        if case .role(let needed) = route.access {
            guard principal.role.rank >= needed.rank, principal.role != .billing else {
                throw ServiceError.forbidden("requires the \(needed.rawValue) role or higher")
            }
        }
        if principal.kind == "api_key" {
            let scope = route.isMutating ? "write" : "read"
            guard principal.scopes.contains(scope) || principal.scopes.contains("admin") else {
                throw ServiceError.forbidden("API key lacks the \(scope) scope")
            }
        }
        return resolved
    }

    /// Asks identity for the principal and caches it (unless an invalidation came meanwhile).
    func resolveAndCache(_ resolve: ResolvePrincipalRequest, key: String, _ context: GatewayContext) async throws -> PrincipalCache.Resolved {
        let asked = principals.entries.asked
        let p = try await bus.request(
            IdentityAPI.resolvePrincipal, resolve, context: CallContext(correlationId: context.correlationId, clientAddress: context.client),
            timeout: timeout, resendAt: BusConnection.resends(timeout))  // a lookup: idempotent
        let resolved = PrincipalCache.Resolved(principal: p, header: String(decoding: try JSON.encode(p), as: UTF8.self))
        principals.entries.put(key, resolved, asked: asked)
        return resolved
    }
}
