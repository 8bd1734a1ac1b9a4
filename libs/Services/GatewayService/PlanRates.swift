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
    private struct Cached {
        var limit: Int?
        var fetched: Double
    }
    private struct Window {
        var start: Double
        var count: Int
    }
    private let cache = Mutex<[String: Cached]>([:])
    private let subscription = Mutex<BusSubscription?>(nil)
    private let windows = Mutex<[String: Window]>([:])
    let bus: BusConnection
    let ttl: Double
    let logger: Logger

    init(bus: BusConnection, ttl: Double = 60, logger: Logger) {
        self.bus = bus
        self.ttl = ttl
        self.logger = logger
    }

    /// Every replica (no queue group) hears billing's subscription changes as they are published to the
    /// events stream's subject.
    func listen() throws {
        struct Changed: Decodable { var tenantId: String? }
        let sub = try bus.subscribe(Events.billingSubscriptionUpdated.subject) { [weak self] msg in
            guard let self, let tenant = (try? JSON.decode(Changed.self, from: msg.data))?.tenantId else { return }
            self.cache.withLock { _ = $0.removeValue(forKey: tenant) }
        }
        subscription.withLock { $0 = sub }
    }

    func limit(for tenant: String, now: Double) async -> Int? {
        if let c = cache.withLock({ $0[tenant] }), now - c.fetched < ttl { return c.limit }
        do {
            let reply = try await bus.request(
                Endpoint<Empty, Limits>(Subjects.Billing.planLimits), Empty(), context: CallContext(tenantId: tenant),
                timeout: .seconds(2))
            cache.withLock { all in
                if all.count > 100_000 { all.removeAll() }
                all[tenant] = Cached(limit: reply.limits.apiRequestsPerMinute, fetched: now)
            }
            return reply.limits.apiRequestsPerMinute
        } catch {
            logger.warning("plan limits unavailable; not applying the plan's API rate", metadata: ["tenant_id": "\(tenant)", "error": "\(error)"])
            cache.withLock { $0[tenant] = Cached(limit: nil, fetched: now - ttl + 5) }
            return nil
        }
    }

    /// Counts one request; throws `quota_exceeded` (429) past the plan's rate.
    func check(tenant: String, now: Double = Date().timeIntervalSince1970) async throws {
        guard let limit = await limit(for: tenant, now: now) else { return }
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
