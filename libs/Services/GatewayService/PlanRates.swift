import Bus
import Contracts
import Foundation
import Logging
import Synchronization
import VigilCore

/// The plan's API rate per workspace (requests per minute, from billing's `vigil.billing.plan.limits`,
/// cached for a minute), counted in one-minute windows per gateway replica. A plan change reaches every
/// replica at once: billing's `billing.subscription_updated` event drops the workspace's cached limits. When
/// billing cannot be asked, the workspace is not plan-limited (the per-credential limits still apply).
final class PlanRates: Sendable {
    struct Limits: Codable, Sendable {
        struct L: Codable, Sendable { var apiRequestsPerMinute: Int? }
        var limits: L
    }
    private struct Window {
        var start: Double
        var count: Int
    }
    /// Each workspace's limit (nil: none), refreshed ahead of its time (see `RefreshingCache`).
    private let cache: RefreshingCache<Int?>
    private let subscription = Mutex<BusSubscription?>(nil)
    private let windows = Mutex<[String: Window]>([:])
    let bus: BusConnection
    let logger: Logger

    init(bus: BusConnection, ttl: Duration = .seconds(60), logger: Logger) {
        self.bus = bus
        self.cache = RefreshingCache(ttl: ttl)
        self.logger = logger
    }

    /// Every replica (no queue group) hears billing's subscription changes as they are published to the
    /// events stream's subject.
    func listen() throws {
        struct Changed: Decodable { var tenantId: String? }
        let sub = try bus.subscribe(Events.billingSubscriptionUpdated.subject) { [weak self] msg in
            guard let self, let tenant = (try? JSON.decode(Changed.self, from: msg.data))?.tenantId else { return }
            self.cache.invalidate(tenant)
        }
        subscription.withLock { $0 = sub }
    }

    /// The workspace's plan rate (nil: none).
    func limit(for tenant: String) async -> Int? {
        if let hit = cache.get(tenant) {
            if hit.refresh { Task { await fetch(tenant, background: true) } }
            return hit.value
        }
        return await fetch(tenant, background: false)
    }

    @discardableResult
    private func fetch(_ tenant: String, background: Bool) async -> Int? {
        let asked = cache.asked
        do {
            let reply = try await bus.request(
                Endpoint<Empty, Limits>(Subjects.Billing.planLimits), Empty(), context: CallContext(tenantId: tenant),
                timeout: .seconds(2))
            cache.put(tenant, reply.limits.apiRequestsPerMinute, asked: asked)
            return reply.limits.apiRequestsPerMinute
        } catch {
            logger.warning("plan limits unavailable; not applying the plan's API rate", metadata: ["tenant_id": "\(tenant)", "error": "\(error)"])
            if background {
                cache.refreshFailed(tenant)  // keeps the limit it has; a later request asks again
            } else {
                cache.put(tenant, nil, asked: asked, life: .seconds(5))  // not asked again for every request meanwhile
            }
            return nil
        }
    }

    /// Counts one request; throws `quota_exceeded` (429) past the plan's rate.
    func check(tenant: String, now: Double = Date().timeIntervalSince1970) async throws {
        guard let limit = await limit(for: tenant) else { return }
        let (allowed, count, start) = windows.withLock { all -> (Bool, Int, Double) in
            if all.count > 100_000 { all = all.filter { now - $0.value.start < 60 } }
            var w = all[tenant] ?? Window(start: now, count: 0)
            if now - w.start >= 60 { w = Window(start: now, count: 0) }
            let ok = w.count < limit
            if ok { w.count += 1 }
            all[tenant] = w
            return (ok, w.count, w.start)
        }
        guard allowed else {
            let reset = Date(timeIntervalSince1970: start + 60)
            throw ServiceError.quotaExceeded(
                QuotaDetail(name: "api_requests_per_minute", limit: limit, used: count, resetsAt: Timestamp.format(reset)),
                status: 429, message: "the plan allows \(limit) API requests per minute; retry after \(Timestamp.format(reset))")
        }
    }
}
