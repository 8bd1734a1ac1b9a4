import Foundation
import VigilCore

/// A plan's limits; nil means unlimited.
struct PlanLimits: Codable, Sendable, Equatable {
    @ExplicitNull var connections: Int?
    @ExplicitNull var scansPerMonth: Int?
    @ExplicitNull var remediationsPerMonth: Int?
    @ExplicitNull var seats: Int?
    @ExplicitNull var apiRequestsPerMinute: Int?
    @ExplicitNull var findingsRetentionDays: Int?

    func limit(_ quota: String) -> Int? {
        switch quota {
        case "connections": connections
        case "scans": scansPerMonth
        case "remediations": remediationsPerMonth
        case "seats": seats
        case "api_requests_per_minute": apiRequestsPerMinute
        default: nil
        }
    }
}

struct PlanPrice: Codable, Sendable, Equatable {
    var interval: String
    var amountCents: Int
    var currency: String
}

struct Plan: Codable, Sendable, Equatable {
    var id: String
    var name: String
    var rank: Int
    var description: String
    var prices: [PlanPrice]
    var limits: PlanLimits
    var features: [String]
}

/// The catalogue (`GET /billing/plans`). Counter quotas (scans, remediations) reset each period;
/// gauge quotas (connections, seats) count what exists.
enum Plans {
    static let counters = ["scans", "remediations"]
    static let gauges = ["connections", "seats"]
    static let quotas = counters + gauges

    static let all: [Plan] = [
        Plan(
            id: "free", name: "Free", rank: 0, description: "One account, weekly scans, findings and compliance views",
            prices: [PlanPrice(interval: "month", amountCents: 0, currency: "usd")],
            limits: PlanLimits(
                connections: 1, scansPerMonth: 20, remediationsPerMonth: 0, seats: 2, apiRequestsPerMinute: 120, findingsRetentionDays: 30),
            features: ["findings", "compliance_scores", "email_notifications"]),
        Plan(
            id: "pro", name: "Pro", rank: 1, description: "Small teams: more accounts, approved fixes, webhooks and Slack",
            prices: [
                PlanPrice(interval: "month", amountCents: 4900, currency: "usd"), PlanPrice(interval: "year", amountCents: 49000, currency: "usd"),
            ],
            limits: PlanLimits(
                connections: 5, scansPerMonth: 500, remediationsPerMonth: 100, seats: 10, apiRequestsPerMinute: 1200, findingsRetentionDays: 180),
            features: [
                "findings", "compliance_scores", "email_notifications", "auto_remediation", "webhooks", "slack", "reports", "active_web_scans",
            ]),
        Plan(
            id: "business", name: "Business", rank: 2, description: "Many accounts, automatic fixes by policy, SSO",
            prices: [
                PlanPrice(interval: "month", amountCents: 19900, currency: "usd"), PlanPrice(interval: "year", amountCents: 199000, currency: "usd"),
            ],
            limits: PlanLimits(
                connections: 25, scansPerMonth: 5000, remediationsPerMonth: 1000, seats: 50, apiRequestsPerMinute: 6000, findingsRetentionDays: 365),
            features: [
                "findings", "compliance_scores", "email_notifications", "auto_remediation", "webhooks", "slack", "reports", "sso", "audit_log_export",
                "active_web_scans",
            ]),
        Plan(
            id: "enterprise", name: "Enterprise", rank: 3, description: "Unlimited accounts and scans, MSP workspaces, SSO, support",
            prices: [
                PlanPrice(interval: "month", amountCents: 99900, currency: "usd"), PlanPrice(interval: "year", amountCents: 999000, currency: "usd"),
            ],
            limits: PlanLimits(
                connections: nil, scansPerMonth: nil, remediationsPerMonth: nil, seats: nil, apiRequestsPerMinute: nil, findingsRetentionDays: 730),
            features: [
                "findings", "compliance_scores", "email_notifications", "auto_remediation", "webhooks", "slack", "reports", "sso", "audit_log_export",
                "msp_workspaces", "priority_support", "active_web_scans",
            ]),
    ]
    static let byId: [String: Plan] = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
    static let free = byId["free"]!
}
