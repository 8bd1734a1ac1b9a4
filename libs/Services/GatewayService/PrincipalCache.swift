import Bus
import Contracts
import Foundation
import Synchronization
import VigilCore

/// Resolved principals, kept for a few seconds so an authenticated request costs one bus request
/// instead of two (refreshed ahead of their time: see `RefreshingCache`). Identity broadcasts
/// `vigil.identity.principal.invalidated` before it answers a revocation or a role change, and every
/// gateway replica drops the affected entries at once.
final class PrincipalCache: Sendable {
    /// A principal and its `Vigil-Principal` header value (encoded once, reused per request).
    struct Resolved: Sendable {
        let principal: Principal
        let header: String
    }
    let entries: RefreshingCache<Resolved>
    private let subscription = Mutex<BusSubscription?>(nil)

    init(ttl: Duration) { entries = RefreshingCache(ttl: ttl) }

    /// Subscribes every replica (no queue group) to invalidations.
    func listen(on bus: BusConnection) throws {
        let sub = try bus.subscribe(IdentityBroadcasts.principalInvalidated) { [weak self] msg in
            guard let self, let inv = try? JSON.decode(PrincipalInvalidation.self, from: msg.data) else { return }
            self.invalidate(inv)
        }
        subscription.withLock { $0 = sub }
    }

    func invalidate(_ inv: PrincipalInvalidation) {
        entries.invalidate { _, r in
            let p = r.principal
            if let k = inv.apiKeyId, p.apiKeyId == k { return true }
            if let u = inv.userId, p.userId == u { return true }
            if let t = inv.tenantId, p.tenantId == t || p.viaParentTenantId == t { return true }
            return false
        }
    }
}
