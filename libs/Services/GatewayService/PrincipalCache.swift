import Bus
import Contracts
import Foundation
import Synchronization
import VigilCore

/// Resolved principals, kept for a few seconds so an authenticated request costs one bus request
/// instead of two. Identity broadcasts `vigil.identity.principal.invalidated` before it answers a
/// revocation or a role change, and every gateway replica drops the affected entries at once.
final class PrincipalCache: Sendable {
    /// A principal and its `Vigil-Principal` header value (encoded once, reused per request).
    struct Resolved: Sendable {
        let principal: Principal
        let header: String
    }
    private struct Entry {
        let resolved: Resolved
        let expires: ContinuousClock.Instant
    }
    private let entries = Mutex<[String: Entry]>([:])
    let ttl: Duration
    let maxEntries = 100_000
    private let subscription = Mutex<BusSubscription?>(nil)

    init(ttl: Duration) { self.ttl = ttl }

    /// Subscribes every replica (no queue group) to invalidations.
    func listen(on bus: BusConnection) throws {
        let sub = try bus.subscribe(IdentityBroadcasts.principalInvalidated) { [weak self] msg in
            guard let self, let inv = try? JSON.decode(PrincipalInvalidation.self, from: msg.data) else { return }
            self.invalidate(inv)
        }
        subscription.withLock { $0 = sub }
    }

    func get(_ key: String) -> Resolved? {
        guard ttl > .zero else { return nil }
        return entries.withLock { e in
            guard let entry = e[key] else { return nil }
            if entry.expires < .now {
                e[key] = nil
                return nil
            }
            return entry.resolved
        }
    }

    func put(_ key: String, _ r: Resolved) {
        guard ttl > .zero else { return }
        let now = ContinuousClock.now
        entries.withLock { e in
            if e.count >= maxEntries { e = e.filter { $0.value.expires > now } }
            if e.count >= maxEntries { e.removeAll() }
            e[key] = Entry(resolved: r, expires: now + ttl)
        }
    }

    func invalidate(_ inv: PrincipalInvalidation) {
        entries.withLock { e in
            e = e.filter { _, entry in
                let p = entry.resolved.principal
                if let k = inv.apiKeyId, p.apiKeyId == k { return false }
                if let u = inv.userId, p.userId == u { return false }
                if let t = inv.tenantId, p.tenantId == t || p.viaParentTenantId == t { return false }
                return true
            }
        }
    }
}
