import Bus
import Contracts
import Foundation
import Store
import Synchronization
import VigilCore

/// Decoded `Vigil-Principal` headers, memoized: the gateway sends the same header text for every
/// request of a credential, and JSON decoding is the costliest step of a cheap handler.
enum PrincipalHeaders {
    private static let memo = Mutex<[String: Principal]>([:])

    static func decode(_ header: String) -> Principal? {
        if let p = memo.withLock({ $0[header] }) { return p }
        guard let p = try? JSON.decode(Principal.self, from: Data(header.utf8)) else { return nil }
        memo.withLock { m in
            if m.count >= 10_000 { m.removeAll() }
            m[header] = p
        }
        return p
    }
}

extension CallContext {
    /// The authenticated caller; 401 when the gateway attached none.
    package func requirePrincipal() throws -> Principal {
        guard let p = principal, let principal = PrincipalHeaders.decode(p) else {
            throw ServiceError.unauthorized()
        }
        return principal
    }

    /// The caller when present (public routes that behave differently for signed-in users).
    package var optionalPrincipal: Principal? { try? requirePrincipal() }
}

extension RouteAccess {
    /// The responder's check: a subject routed to members or to a role answers 401 without a
    /// principal and 403 below the role, whoever sends the request (the gateway or another program on
    /// the bus). Subjects without a route entry (public, internal) are left to their handlers.
    @Sendable package static func authorize(_ subject: String, _ ctx: CallContext) throws {
        guard let access = bySubject[subject] else { return }
        let p = try ctx.requirePrincipal()
        if case .role(let role) = access { try p.require(atLeast: role) }
    }
}

extension ServiceResponder {
    /// Adds a typed endpoint for signed-in callers: the handler gets the principal (401 without one).
    /// Its route's role was checked before (see `RouteAccess.authorize`).
    package func add<Req, Rep>(
        _ endpoint: Endpoint<Req, Rep>, name: String? = nil,
        handler: @escaping @Sendable (Req, Principal, CallContext) async throws -> Rep
    ) {
        add(endpoint, name: name) { (req: Req, ctx: CallContext) in try await handler(req, try ctx.requirePrincipal(), ctx) }
    }
}

extension Principal {
    /// Throws 403 unless the caller's role is at least `role` (owner > admin > analyst > viewer).
    package func require(atLeast role: Role) throws {
        guard self.role.rank >= role.rank, self.role != .billing || role == .billing else {
            throw ServiceError.forbidden("requires the \(role.rawValue) role or higher")
        }
    }

    /// The store scope for this caller's workspace.
    package var scope: TenantScope { .tenant(tenantId) }
}
