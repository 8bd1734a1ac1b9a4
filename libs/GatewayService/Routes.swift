import Contracts
import HTTPTypes

/// Who may call a route.
enum Access: Sendable, Equatable {
    /// No credentials needed (and any given are ignored).
    case `public`
    /// Credentials optional: the principal is attached when present and valid.
    case optional
    /// Any member of the selected workspace, whatever the role.
    case member
    /// At least this role (owner > admin > analyst > viewer).
    case role(Role)
}

/// How a query parameter is typed before it is put in the bus request.
enum QueryType: Sendable { case int, string, bool }

/// One REST route: where it goes on the bus and who may call it.
struct Route: Sendable {
    var method: HTTPRequest.Method
    /// Path with `{param}` placeholders, exactly as in the OpenAPI document.
    var path: String
    var subject: String
    var access: Access
    var status: HTTPResponse.Status = .ok
    var query: [String: QueryType] = [:]
    /// False for routes that take no body (the body, if any, is ignored).
    var takesBody: Bool = true
    /// The service answers `{content_type, filename, content_base64}` and the client gets the raw file.
    var download: Bool = false
    /// The service gets the raw body (base64) and its signature headers instead of parsed JSON.
    var rawBody: Bool = false

    /// The path in Hummingbird's `:param` syntax.
    var routerPath: String {
        path.split(separator: "/", omittingEmptySubsequences: true).map { part in
            part.hasPrefix("{") ? ":" + part.dropFirst().dropLast() : String(part)
        }.joined(separator: "/")
    }

    var pathParameters: [String] {
        path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
    }

    var isMutating: Bool { method != .get && method != .head }
}

/// The REST surface, table-driven: every route of the FixMyCloud reference implemented so far.
enum RouteTable {
    static let page: [String: QueryType] = ["limit": .int, "cursor": .string, "offset": .int]

    static let all: [Route] = [
        // auth
        Route(method: .post, path: "/api/v1/auth/signup", subject: "vigil.identity.auth.signup", access: .public, status: .created),
        Route(method: .post, path: "/api/v1/auth/login", subject: "vigil.identity.auth.login", access: .public),
        Route(method: .post, path: "/api/v1/auth/refresh", subject: "vigil.identity.auth.refresh", access: .public),
        Route(method: .post, path: "/api/v1/auth/forgot-password", subject: "vigil.identity.auth.forgot_password", access: .public, status: .accepted),
        Route(method: .post, path: "/api/v1/auth/reset-password", subject: "vigil.identity.auth.reset_password", access: .public),
        Route(method: .post, path: "/api/v1/auth/change-password", subject: "vigil.identity.auth.change_password", access: .member),
        Route(method: .post, path: "/api/v1/auth/resend-verification", subject: "vigil.identity.auth.resend_verification", access: .optional),
        Route(method: .post, path: "/api/v1/auth/verify-email/{token}", subject: "vigil.identity.auth.verify_email", access: .public, takesBody: false),
        Route(method: .get, path: "/api/v1/auth/me", subject: "vigil.identity.auth.me", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/me", subject: "vigil.identity.auth.me", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/ping", subject: "vigil.identity.health.ping", access: .public, takesBody: false),
        // users
        Route(method: .get, path: "/api/v1/users/team", subject: "vigil.identity.team.list", access: .role(.viewer), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/users/invite", subject: "vigil.identity.invitation.create", access: .role(.admin), status: .created),
        Route(method: .patch, path: "/api/v1/users/team/{membership_id}/role", subject: "vigil.identity.team.update_role", access: .role(.admin)),
        Route(method: .delete, path: "/api/v1/users/team/{membership_id}", subject: "vigil.identity.team.remove", access: .member, status: .noContent, takesBody: false),
        Route(method: .patch, path: "/api/v1/users/profile", subject: "vigil.identity.user.update_profile", access: .member),
        // tenants
        Route(method: .get, path: "/api/v1/tenants/current", subject: "vigil.identity.tenant.get", access: .member, takesBody: false),
        Route(method: .patch, path: "/api/v1/tenants/current", subject: "vigil.identity.tenant.update", access: .role(.admin)),
        Route(method: .patch, path: "/api/v1/tenants/current/remediation-policy", subject: "vigil.remediation.policy.update", access: .role(.admin)),
        // billing and quotas
        Route(method: .get, path: "/api/v1/billing/plans", subject: "vigil.billing.plan.list", access: .public, takesBody: false),
        Route(method: .get, path: "/api/v1/billing/subscription", subject: "vigil.billing.subscription.get", access: .member, takesBody: false),
        Route(method: .post, path: "/api/v1/billing/checkout", subject: "vigil.billing.subscription.checkout", access: .member),
        Route(method: .post, path: "/api/v1/billing/portal", subject: "vigil.billing.subscription.portal", access: .member, takesBody: false),
        Route(method: .post, path: "/api/v1/billing/cancel", subject: "vigil.billing.subscription.cancel", access: .member, takesBody: false),
        Route(method: .post, path: "/api/v1/billing/resume", subject: "vigil.billing.subscription.resume", access: .member, takesBody: false),
        Route(method: .post, path: "/api/v1/billing/webhooks/stripe", subject: "vigil.billing.webhook.stripe", access: .public, rawBody: true),
        Route(method: .get, path: "/api/v1/quotas/balance", subject: "vigil.billing.quota.balance", access: .member, takesBody: false),
        // remediation
        Route(method: .post, path: "/api/v1/connections/{connection_id}/remediation-credentials", subject: "vigil.remediation.credentials.set", access: .role(.admin)),
        Route(method: .delete, path: "/api/v1/connections/{connection_id}/remediation-credentials", subject: "vigil.remediation.credentials.delete",
              access: .role(.admin), takesBody: false),
        Route(method: .post, path: "/api/v1/remediations/request", subject: "vigil.remediation.action.request", access: .role(.analyst), status: .created),
        Route(method: .get, path: "/api/v1/remediations/", subject: "vigil.remediation.action.list", access: .role(.viewer),
              query: page.merging(["status": .string, "finding_id": .string, "connection_id": .string]) { $1 }, takesBody: false),
        Route(method: .get, path: "/api/v1/remediations/pending", subject: "vigil.remediation.action.pending", access: .role(.viewer), query: page, takesBody: false),
        Route(method: .get, path: "/api/v1/remediations/actions", subject: "vigil.remediation.actions.catalog", access: .role(.viewer), takesBody: false),
        Route(method: .get, path: "/api/v1/remediations/{action_id}", subject: "vigil.remediation.action.get", access: .role(.viewer), takesBody: false),
        Route(method: .post, path: "/api/v1/remediations/{action_id}/approve", subject: "vigil.remediation.action.approve", access: .role(.analyst)),
        Route(method: .post, path: "/api/v1/remediations/{action_id}/reject", subject: "vigil.remediation.action.reject", access: .role(.analyst)),
        Route(method: .post, path: "/api/v1/remediations/{action_id}/rollback", subject: "vigil.remediation.action.rollback", access: .role(.analyst),
              status: .accepted, takesBody: false),
        Route(method: .get, path: "/api/v1/approvals/", subject: "vigil.remediation.approvals.list", access: .role(.viewer), query: page, takesBody: false),
        Route(method: .patch, path: "/api/v1/tenants/current/settings", subject: "vigil.identity.tenant.update_settings", access: .role(.admin)),
        Route(method: .get, path: "/api/v1/tenants/msp/workspaces", subject: "vigil.identity.tenant.list_children", access: .role(.admin), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/tenants/msp/workspaces", subject: "vigil.identity.tenant.create_child", access: .role(.admin), status: .created),
        // api keys
        Route(method: .post, path: "/api/v1/api-keys/", subject: "vigil.identity.apikey.create", access: .role(.analyst), status: .created),
        Route(method: .get, path: "/api/v1/api-keys/", subject: "vigil.identity.apikey.list", access: .role(.viewer), query: page, takesBody: false),
        Route(method: .delete, path: "/api/v1/api-keys/{key_id}", subject: "vigil.identity.apikey.revoke", access: .role(.analyst), status: .noContent, takesBody: false),
        // invitations
        Route(method: .post, path: "/api/v1/invitations/", subject: "vigil.identity.invitation.create", access: .role(.admin), status: .created),
        Route(method: .get, path: "/api/v1/invitations/", subject: "vigil.identity.invitation.list", access: .role(.admin), query: page, takesBody: false),
        Route(method: .get, path: "/api/v1/invitations/validate/{token}", subject: "vigil.identity.invitation.validate", access: .public, takesBody: false),
        Route(method: .post, path: "/api/v1/invitations/accept/{token}", subject: "vigil.identity.invitation.accept", access: .public),
        Route(method: .post, path: "/api/v1/invitations/{invitation_id}/resend", subject: "vigil.identity.invitation.resend", access: .role(.admin), takesBody: false),
        Route(method: .delete, path: "/api/v1/invitations/{invitation_id}", subject: "vigil.identity.invitation.revoke", access: .role(.admin), status: .noContent, takesBody: false),
        // connections (scan-orchestrator)
        Route(method: .get, path: "/api/v1/connections/", subject: "vigil.scans.connection.list", access: .role(.viewer), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/connections/", subject: "vigil.scans.connection.create", access: .role(.admin), status: .created),
        Route(method: .post, path: "/api/v1/connections/linux/generate-key", subject: "vigil.scans.connection.generate_key", access: .role(.admin), takesBody: false),
        Route(method: .get, path: "/api/v1/connections/linux/install-instructions", subject: "vigil.scans.instructions.linux_install", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/connections/windows/install-instructions", subject: "vigil.scans.instructions.windows_install", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/connections/windows/setup-instructions", subject: "vigil.scans.instructions.windows_setup", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/connections/azure/setup-instructions", subject: "vigil.scans.instructions.azure_setup", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/connections/gcp/setup-instructions", subject: "vigil.scans.instructions.gcp_setup", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/connections/{connection_id}", subject: "vigil.scans.connection.get", access: .role(.viewer), takesBody: false),
        Route(method: .patch, path: "/api/v1/connections/{connection_id}", subject: "vigil.scans.connection.update", access: .role(.admin)),
        Route(method: .delete, path: "/api/v1/connections/{connection_id}", subject: "vigil.scans.connection.delete", access: .role(.admin), status: .noContent, takesBody: false),
        Route(method: .post, path: "/api/v1/connections/{connection_id}/test", subject: "vigil.scans.connection.test", access: .role(.analyst), takesBody: false),
        // scans (scan-orchestrator)
        Route(method: .post, path: "/api/v1/scans/trigger", subject: "vigil.scans.scan.trigger", access: .role(.analyst), status: .accepted),
        Route(method: .get, path: "/api/v1/scans/", subject: "vigil.scans.scan.list", access: .role(.viewer),
              query: page.merging(["connection_id": .string, "status": .string]) { $1 }, takesBody: false),
        Route(method: .get, path: "/api/v1/scans/{scan_id}", subject: "vigil.scans.scan.get", access: .role(.viewer), takesBody: false),
        Route(method: .get, path: "/api/v1/scans/{scan_id}/progress", subject: "vigil.scans.scan.progress", access: .role(.viewer), takesBody: false),
        Route(method: .post, path: "/api/v1/scans/{scan_id}/cancel", subject: "vigil.scans.scan.cancel", access: .role(.analyst), takesBody: false),
        Route(method: .get, path: "/api/v1/scans/{scan_id}/results", subject: "vigil.scans.scan.results", access: .role(.viewer),
              query: page.merging(["status": .string, "severity": .string, "rule_id": .string]) { $1 }, takesBody: false),
        // findings, finding events, rules, compliance, reports (findings)
        Route(method: .get, path: "/api/v1/findings/", subject: "vigil.findings.finding.list", access: .role(.viewer),
              query: page.merging(["severity": .string, "status": .string, "provider": .string, "rule_code": .string, "connection_id": .string,
                                   "scan_job_id": .string, "auto_fix_only": .bool, "search": .string, "sort_by": .string]) { $1 }, takesBody: false),
        Route(method: .get, path: "/api/v1/findings/summary", subject: "vigil.findings.finding.summary", access: .role(.viewer), takesBody: false),
        Route(method: .get, path: "/api/v1/findings/resolution-trend", subject: "vigil.findings.finding.resolution_trend", access: .role(.viewer), takesBody: false),
        Route(method: .get, path: "/api/v1/findings/coverage-summary", subject: "vigil.findings.finding.coverage_summary", access: .role(.viewer), takesBody: false),
        Route(method: .get, path: "/api/v1/findings/suppression-rules", subject: "vigil.findings.suppression.list", access: .role(.viewer), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/findings/suppression-rules", subject: "vigil.findings.suppression.create", access: .role(.admin), status: .created),
        Route(method: .delete, path: "/api/v1/findings/suppression-rules/{suppression_id}", subject: "vigil.findings.suppression.delete", access: .role(.admin),
              status: .noContent, takesBody: false),
        Route(method: .get, path: "/api/v1/findings/{finding_id}", subject: "vigil.findings.finding.get", access: .role(.viewer), takesBody: false),
        Route(method: .post, path: "/api/v1/findings/{finding_id}/suppress", subject: "vigil.findings.finding.suppress", access: .role(.analyst)),
        Route(method: .post, path: "/api/v1/findings/{finding_id}/accept-risk", subject: "vigil.findings.finding.accept_risk", access: .role(.analyst)),
        Route(method: .post, path: "/api/v1/findings/{finding_id}/reopen", subject: "vigil.findings.finding.reopen", access: .role(.analyst)),
        Route(method: .post, path: "/api/v1/findings/{finding_id}/ai-remediation", subject: "vigil.findings.finding.ai_remediation", access: .role(.viewer),
              takesBody: false),
        Route(method: .get, path: "/api/v1/finding-events", subject: "vigil.findings.event.list", access: .role(.viewer),
              query: page.merging(["connection_id": .string, "finding_id": .string, "severity": .string, "event_type": .string, "start": .string,
                                   "end": .string]) { $1 }, takesBody: false),
        Route(method: .get, path: "/api/v1/rules/", subject: "vigil.findings.rule.list", access: .role(.viewer),
              query: page.merging(["provider": .string, "service": .string, "severity": .string, "category": .string, "framework": .string,
                                   "enabled": .bool, "custom": .bool, "search": .string, "resource_type": .string]) { $1 }, takesBody: false),
        Route(method: .post, path: "/api/v1/rules/", subject: "vigil.findings.rule.create", access: .role(.admin), status: .created),
        Route(method: .get, path: "/api/v1/rules/{rule_id}", subject: "vigil.findings.rule.get", access: .role(.viewer), takesBody: false),
        Route(method: .patch, path: "/api/v1/rules/{rule_id}", subject: "vigil.findings.rule.update", access: .role(.admin)),
        Route(method: .get, path: "/api/v1/compliance/frameworks", subject: "vigil.findings.compliance.frameworks", access: .role(.viewer), takesBody: false),
        Route(method: .get, path: "/api/v1/compliance/score", subject: "vigil.findings.compliance.score", access: .role(.viewer),
              query: ["connection_id": .string], takesBody: false),
        Route(method: .get, path: "/api/v1/compliance/score/{framework_id}", subject: "vigil.findings.compliance.framework", access: .role(.viewer),
              query: ["connection_id": .string], takesBody: false),
        Route(method: .get, path: "/api/v1/compliance/report", subject: "vigil.findings.compliance.report", access: .role(.viewer),
              query: ["framework_id": .string, "connection_id": .string], takesBody: false),
        Route(method: .get, path: "/api/v1/reports/", subject: "vigil.findings.report.list", access: .role(.viewer), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/reports/generate", subject: "vigil.findings.report.generate", access: .role(.analyst), status: .created),
        Route(method: .get, path: "/api/v1/reports/{report_id}", subject: "vigil.findings.report.get", access: .role(.viewer), takesBody: false),
        Route(method: .get, path: "/api/v1/reports/{report_id}/download", subject: "vigil.findings.report.download", access: .role(.viewer),
              takesBody: false, download: true),
        // contact, webhooks, events, audit log (notifier)
        Route(method: .post, path: "/api/v1/contact/", subject: "vigil.notifier.contact.submit", access: .public, status: .accepted),
        Route(method: .get, path: "/api/v1/webhooks/endpoints", subject: "vigil.notifier.webhook.list", access: .role(.admin), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/webhooks/endpoints", subject: "vigil.notifier.webhook.create", access: .role(.admin), status: .created),
        Route(method: .delete, path: "/api/v1/webhooks/endpoints/{endpoint_id}", subject: "vigil.notifier.webhook.delete", access: .role(.admin), status: .noContent, takesBody: false),
        Route(method: .post, path: "/api/v1/webhooks/endpoints/{endpoint_id}/test", subject: "vigil.notifier.webhook.test", access: .role(.admin), takesBody: false),
        Route(method: .post, path: "/api/v1/webhooks/endpoints/{endpoint_id}/rotate-secret", subject: "vigil.notifier.webhook.rotate_secret", access: .role(.admin)),
        Route(method: .get, path: "/api/v1/webhooks/endpoints/{endpoint_id}/deliveries", subject: "vigil.notifier.delivery.list", access: .role(.admin), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/webhooks/deliveries/{delivery_id}/redeliver", subject: "vigil.notifier.delivery.redeliver", access: .role(.admin), takesBody: false),
        Route(method: .get, path: "/api/v1/notifications/channels", subject: "vigil.notifier.channel.list", access: .role(.admin), query: page, takesBody: false),
        Route(method: .post, path: "/api/v1/notifications/channels", subject: "vigil.notifier.channel.create", access: .role(.admin), status: .created),
        Route(method: .patch, path: "/api/v1/notifications/channels/{channel_id}", subject: "vigil.notifier.channel.update", access: .role(.admin)),
        Route(method: .delete, path: "/api/v1/notifications/channels/{channel_id}", subject: "vigil.notifier.channel.delete", access: .role(.admin), status: .noContent, takesBody: false),
        Route(method: .post, path: "/api/v1/notifications/channels/test", subject: "vigil.notifier.channel.test", access: .role(.admin)),
        Route(method: .get, path: "/api/v1/notifications/policy", subject: "vigil.notifier.policy.get", access: .member, takesBody: false),
        Route(method: .patch, path: "/api/v1/notifications/policy", subject: "vigil.notifier.policy.update", access: .role(.admin)),
        Route(method: .get, path: "/api/v1/events/types", subject: "vigil.notifier.event_type.list", access: .member, takesBody: false),
        Route(method: .get, path: "/api/v1/webhooks/audit-logs", subject: "vigil.notifier.audit.list", access: .role(.admin),
              query: page.merging(["action": .string, "resource_type": .string, "actor": .string, "since": .string, "until": .string]) { a, _ in a },
              takesBody: false),
    ]
}
