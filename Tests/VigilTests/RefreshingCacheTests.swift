import Contracts
import Foundation
import Testing
import VigilCore

@testable import GatewayService

/// The per-replica caches (principals, plan limits, workspace rows): an entry is refreshed ahead of its time
/// (by one caller) and never used past it, and an answer asked for before an invalidation is not kept.
@Suite struct RefreshingCacheTests {
    @Test func oneCallerRefreshesPastHalfTheTimeAndTheEntryEndsAtItsTime() {
        let cache = RefreshingCache<Int>(ttl: .seconds(10))
        let t0 = ContinuousClock.now
        cache.put("k", 1, asked: cache.asked, now: t0)
        #expect(cache.get("k", now: t0 + .seconds(4))?.refresh == false)
        #expect(cache.get("k", now: t0 + .seconds(6))?.refresh == true)
        #expect(cache.get("k", now: t0 + .seconds(6))?.refresh == false)  // one refresh at a time
        cache.refreshFailed("k")
        let again = cache.get("k", now: t0 + .seconds(7))
        #expect(again?.refresh == true && again?.value == 1)  // a failed refresh may be tried again; the value stays
        #expect(cache.get("k", now: t0 + .seconds(10)) == nil)  // past its time, though a refresh is on its way
        // A refresh's answer starts a new time; a shorter life is honoured.
        cache.put("k", 2, asked: cache.asked, now: t0 + .seconds(10))
        #expect(cache.get("k", now: t0 + .seconds(12))?.value == 2)
        cache.put("e", 3, asked: cache.asked, life: .seconds(2), now: t0)
        #expect(cache.get("e", now: t0 + .seconds(1))?.refresh == true)
        #expect(cache.get("e", now: t0 + .seconds(3)) == nil)
        // No time, nothing kept.
        let off = RefreshingCache<Int>(ttl: .zero)
        off.put("k", 1, asked: off.asked)
        #expect(off.get("k") == nil)
    }

    @Test func anAnswerAskedForBeforeAnInvalidationIsNotKept() {
        let cache = RefreshingCache<Int>(ttl: .seconds(60))
        let asked = cache.asked
        cache.invalidate("other")
        cache.put("k", 1, asked: asked)
        #expect(cache.get("k") == nil)
        cache.put("k", 1, asked: cache.asked)
        #expect(cache.get("k")?.value == 1)
        cache.invalidate { _, v in v == 1 }
        #expect(cache.get("k") == nil)
    }

    /// A revocation or role change drops the principals it names (key, user, workspace or parent workspace).
    @Test func principalInvalidationsDropWhatTheyName() {
        func principal(_ key: String, user: String?, tenant: String, parent: String? = nil) -> PrincipalCache.Resolved {
            .init(
                principal: Principal(
                    kind: user == nil ? "api_key" : "user", userId: user, apiKeyId: user == nil ? key : nil, tenantId: tenant,
                    tenantSlug: "s", role: .admin, scopes: ["read"], viaParentTenantId: parent),
                header: "{}")
        }
        let cache = PrincipalCache(ttl: .seconds(60))
        let all = [
            "k1": principal("k1", user: nil, tenant: "t1"), "u1": principal("u1", user: "u1", tenant: "t2"),
            "u1-child": principal("u1c", user: "u9", tenant: "t3", parent: "t4"), "k2": principal("k2", user: nil, tenant: "t5"),
        ]
        for (k, v) in all { cache.entries.put(k, v, asked: cache.entries.asked) }
        cache.invalidate(PrincipalInvalidation(apiKeyId: "k1"))
        cache.invalidate(PrincipalInvalidation(userId: "u1"))
        cache.invalidate(PrincipalInvalidation(tenantId: "t4"))
        #expect(["k1", "u1", "u1-child"].allSatisfy { cache.entries.get($0) == nil })
        #expect(cache.entries.get("k2") != nil)
    }
}
