import Bus
import Contracts
import Foundation
import VigilCore

/// The billing service's quotas, as the services that do the work call them (DESIGN.md: quotas are
/// enforced over the bus). A refusal comes back as `quota_exceeded` (403) with the quota's figures;
/// when billing cannot answer, work that needs a reservation is refused with 503 rather than let
/// through uncounted.
package enum Quotas {
    package struct Limits: Codable, Sendable {
        package var connections: Int?
        package var scansPerMonth: Int?
        package var remediationsPerMonth: Int?
        package var seats: Int?
    }
    struct Reserve: Codable, Sendable {
        var quota: String
        var ref: String
        var amount: Int?
    }
    package struct Reservation: Codable, Sendable {
        package var reservationId: String
        package var limits: Limits
        package var plan: String
    }
    struct Settle: Codable, Sendable {
        var quota: String
        var ref: String
    }
    struct SettleReply: Codable, Sendable {
        var ref: String
        var status: String
    }
    struct Gauge: Codable, Sendable {
        var quota: String
        var inUse: Int
        var adding: Int?
    }
    struct GaugeReply: Codable, Sendable {
        var quota: String
        var limit: Int?
        var inUse: Int
        var allowed: Bool
    }

    static func call<Req: Codable & Sendable, Rep: Codable & Sendable>(
        _ bus: BusConnection, _ subject: String, _ req: Req, tenantId: String
    ) async throws -> Rep {
        do {
            return try await bus.request(Endpoint<Req, Rep>(subject), req, context: CallContext(tenantId: tenantId), timeout: .seconds(5))
        } catch let e as ServiceError where e.status < 500 {
            throw e
        } catch {
            throw ServiceError(status: 503, error: "billing_unavailable", message: "quotas cannot be checked right now; try again shortly")
        }
    }

    /// Reserves one unit of a per-period quota (`scans`, `remediations`) for `ref`.
    package static func reserve(_ bus: BusConnection, tenantId: String, quota: String, ref: String) async throws -> Reservation {
        try await call(bus, Subjects.Billing.quotaReserve, Reserve(quota: quota, ref: ref, amount: 1), tenantId: tenantId)
    }

    /// Gives a reservation back (the work was not accepted after all). Best effort: a reservation
    /// left behind is released when its work's terminal event arrives.
    package static func release(_ bus: BusConnection, tenantId: String, quota: String, ref: String) async {
        let _: SettleReply? = try? await call(bus, Subjects.Billing.quotaRelease, Settle(quota: quota, ref: ref), tenantId: tenantId)
    }

    /// Checks a count quota (`connections`, `seats`): `inUse` exist, `adding` more are wanted.
    package static func check(_ bus: BusConnection, tenantId: String, quota: String, inUse: Int, adding: Int = 1) async throws {
        let _: GaugeReply = try await call(bus, Subjects.Billing.quotaCheck, Gauge(quota: quota, inUse: inUse, adding: adding), tenantId: tenantId)
    }

    /// Reports a count after a deletion (for the balance); best effort.
    package static func report(_ bus: BusConnection, tenantId: String, quota: String, inUse: Int) async {
        let _: GaugeReply? = try? await call(bus, Subjects.Billing.quotaCheck, Gauge(quota: quota, inUse: inUse, adding: 0), tenantId: tenantId)
    }
}
