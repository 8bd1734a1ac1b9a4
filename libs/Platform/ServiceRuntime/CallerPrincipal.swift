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
