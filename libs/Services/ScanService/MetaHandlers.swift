import AWS
import Bus
import Contracts
import Foundation
import Net
import ScanEngine
import ServiceRuntime
import VigilCore

struct CapabilitiesReply: Codable, Sendable {
    struct Provider: Codable, Sendable {
        var name: String
        var modes: [String]
        var services: [String]
        var rules: Int
    }
    var apiVersion: String
    var providers: [Provider]
    var scanTypes: [String]
    var rules: Int
    var costRules: Int
    var frameworks: [String]
    var features: [String: Bool]
}

struct CompatibilityReply: Codable, Sendable {
    var apiVersion: String
    var versioning: String
    var deprecation: String
    var pagination: String
    var webhookSigning: String
    var errorEnvelope: String
}

struct ErrorModelReply: Codable, Sendable {
    struct Code: Codable, Sendable {
        var error: String
        var status: Int
        var meaning: String
    }
    var envelope: [String: String]
    var codes: [Code]
}

/// `GET /meta/capabilities`, `/meta/compatibility`, `/meta/error-model`: what this deployment can do,
/// the API's stability promises, and every error code with its HTTP status.
struct MetaHandlers: Sendable {
    let sshGuardrailAllowsPrivate: Bool
    /// The repository scan types this deployment runs (`semgrep` only where it is installed).
    var repoScanTypes: [String] = ["secrets", "sbom"]
    var osvDatabase = false

    func register(on r: ServiceResponder) {
        r.add(Endpoint<Empty, CapabilitiesReply>(Subjects.Scans.metaCapabilities)) { _, _ in capabilities() }
        r.add(Endpoint<Empty, CompatibilityReply>(Subjects.Scans.metaCompatibility)) { _, _ in Self.compatibility }
        r.add(Endpoint<Empty, ErrorModelReply>(Subjects.Scans.metaErrorModel)) { _, _ in Self.errorModel }
    }

    func capabilities() -> CapabilitiesReply {
        let rules = BuiltinRules.all
        let ssh = FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh")
        return CapabilitiesReply(
            apiVersion: "v1",
            providers: [
                .init(
                    name: "aws", modes: ["access_keys", "assume_role"], services: AWSCollectors.names,
                    rules: rules.filter { $0.provider == "aws" }.count),
                .init(
                    name: "linux", modes: ssh ? ["agent", "ssh"] : ["agent"], services: ["host"],
                    rules: rules.filter { $0.provider == "host" }.count),
                .init(name: "web", modes: ["passive"], services: ["web"], rules: rules.filter { $0.provider == "web" }.count),
                .init(
                    name: "repo", modes: ["https_token", "ssh_key"], services: repoScanTypes,
                    rules: rules.filter { $0.provider == "repo" }.count),
            ],
            scanTypes: ["security", "cost"], rules: rules.count, costRules: rules.filter { $0.category == "cost" }.count,
            frameworks: Array(Set(rules.flatMap { $0.compliance.keys })).sorted(),
            features: [
                "schedules": true, "connectors": true, "agentless_ssh": ssh, "utilization_metrics": true, "remediation": true,
                "ssh_private_targets": sshGuardrailAllowsPrivate, "proxy_profiles": true, "semgrep": repoScanTypes.contains("semgrep"),
                "osv_database": osvDatabase, "deep_ai_scan": false,
                "environment_proxy": EnvironmentProxy.current.https != nil || EnvironmentProxy.current.http != nil,
            ])
    }

    static let compatibility = CompatibilityReply(
        apiVersion: "v1",
        versioning:
            "Paths carry the major version (/api/v1). Within v1, fields and routes are only added; a removal or a change of "
            + "meaning is a new major version.",
        deprecation:
            "A deprecated route or field keeps working for at least 6 months after it is marked deprecated in the OpenAPI document "
            + "and the changelog.",
        pagination:
            "Lists return {items, next_cursor, total}; pass next_cursor as cursor. Cursors are opaque and stable while rows are "
            + "added; limit and offset are also accepted.",
        webhookSigning:
            "Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature (v1, HMAC-SHA256 of id.timestamp.body); "
            + "secrets rotate with an overlap.",
        errorEnvelope:
            "Every error is {error, message, correlation_id} with issues[] for validation and quota{} for quota errors; see /meta/error-model.")

    static let errorModel = ErrorModelReply(
        envelope: [
            "error": "a stable machine-readable code (below)", "message": "a human-readable sentence, never a secret",
            "correlation_id": "the request's id, also in the x-correlation-id header", "issues": "validation errors: [{path, message}]",
            "quota": "quota errors: {name, limit, used, resets_at}",
        ],
        codes: [
            .init(error: "invalid_json", status: 400, meaning: "the body is not JSON"),
            .init(error: "invalid_token", status: 400, meaning: "a verification, reset or invitation token is unknown, used or expired"),
            .init(error: "invalid_signature", status: 400, meaning: "a signed webhook's signature does not verify"),
            .init(error: "stale_signature", status: 400, meaning: "a signed webhook's timestamp is too old"),
            .init(error: "invalid_event", status: 400, meaning: "a webhook event cannot be read"),
            .init(error: "unauthorized", status: 401, meaning: "no valid credential (every refusal of a connector is this one)"),
            .init(error: "invalid_credentials", status: 401, meaning: "email or password is wrong"),
            .init(error: "invalid_api_key", status: 401, meaning: "the API key is unknown, expired or revoked"),
            .init(error: "invalid_refresh_token", status: 401, meaning: "the refresh token is unknown, used or revoked"),
            .init(error: "payment_required", status: 402, meaning: "the subscription is past due"),
            .init(error: "forbidden", status: 403, meaning: "the role or scope does not allow it"),
            .init(error: "quota_exceeded", status: 403, meaning: "the plan's quota is used up (quota{} says which)"),
            .init(error: "remediation_disabled", status: 403, meaning: "the workspace's remediation policy is disabled"),
            .init(error: "action_not_allowed", status: 403, meaning: "the remediation policy does not allow this fix"),
            .init(error: "self_approval_forbidden", status: 403, meaning: "the requester cannot approve their own fix"),
            .init(error: "not_found", status: 404, meaning: "no such resource in this workspace (other workspaces' ids also answer this)"),
            .init(error: "method_not_allowed", status: 405, meaning: "the path exists without this method"),
            .init(error: "conflict", status: 409, meaning: "the resource's state does not allow it; specific codes below"),
            .init(error: "email_taken", status: 409, meaning: "an account with this email exists"),
            .init(error: "already_member", status: 409, meaning: "the person is already a member"),
            .init(error: "invitation_pending", status: 409, meaning: "a pending invitation exists for the email"),
            .init(error: "last_owner", status: 409, meaning: "the last owner cannot leave or be demoted"),
            .init(error: "not_pending", status: 409, meaning: "only pending invitations can be resent"),
            .init(error: "invalid_transition", status: 409, meaning: "a finding cannot move to that status from its current one"),
            .init(error: "invalid_state", status: 409, meaning: "a remediation action is not in a state that allows it"),
            .init(error: "scan_finished", status: 409, meaning: "the scan already ended"),
            .init(error: "scan_running", status: 409, meaning: "a queued or running scan cannot be deleted"),
            .init(error: "schedule_limit", status: 409, meaning: "the workspace has the most schedules allowed"),
            .init(error: "run_in_progress", status: 409, meaning: "a run of the schedule was just started"),
            .init(error: "job_not_dispatched", status: 409, meaning: "a connector reported on a job not handed to it"),
            .init(error: "chunk_mismatch", status: 409, meaning: "a result chunk disagrees with the job's earlier chunks"),
            .init(error: "rule_exists", status: 409, meaning: "a rule with this id exists"),
            .init(error: "rule_missing", status: 409, meaning: "the finding's rule no longer exists"),
            .init(error: "finding_not_open", status: 409, meaning: "only open findings are remediated"),
            .init(error: "nothing_to_change", status: 409, meaning: "the resource no longer has the problem"),
            .init(error: "nothing_to_roll_back", status: 409, meaning: "the action changed nothing"),
            .init(error: "remediation_in_progress", status: 409, meaning: "a fix for the finding is pending or running"),
            .init(error: "remediation_credentials_missing", status: 409, meaning: "the connection has no write credentials"),
            .init(error: "remediation_credentials_unusable", status: 409, meaning: "the write credentials are refused"),
            .init(error: "credentials_unreadable", status: 409, meaning: "stored credentials cannot be opened; enter them again"),
            .init(error: "resource_in_use", status: 409, meaning: "the resource is still used"),
            .init(error: "csrf_failed", status: 403, meaning: "a change sent with the dashboard's session cookie lacks its X-CSRF-Token"),
            .init(error: "active_scan_not_authorized", status: 403, meaning: "active web scans need a verified domain (passive only here)"),
            .init(
                error: "scan_type_unavailable", status: 422,
                meaning: "that repository scan type is not available on this server (the message says why)"),
            .init(error: "repository_archived", status: 409, meaning: "an archived repository is not scanned"),
            .init(error: "scan_not_completed", status: 409, meaning: "the scan has not completed (its SBOM is not ready)"),
            .init(error: "sbom_replaced", status: 410, meaning: "a later sbom_scan of the repository replaced this SBOM"),
            .init(error: "fix_active", status: 409, meaning: "the fix is pending or running; refine it once it has finished"),
            .init(error: "fix_not_active", status: 409, meaning: "only a pending or running fix can be canceled"),
            .init(error: "fix_not_completed", status: 409, meaning: "pull requests are opened for completed fixes only"),
            .init(error: "fix_pushed", status: 409, meaning: "the fix was pushed already; request a new fix instead of refining it"),
            .init(error: "pull_request_exists", status: 409, meaning: "the fix was pushed to that branch already"),
            .init(error: "push_failed", status: 422, meaning: "the remote refused the branch (the message says why)"),
            .init(error: "sealed_data_unreadable", status: 409, meaning: "stored sealed data cannot be opened (the key changed)"),
            .init(error: "proxy_in_use", status: 409, meaning: "connections still name the proxy profile"),
            .init(error: "idempotency_in_progress", status: 409, meaning: "a request with this Idempotency-Key is still running"),
            .init(error: "idempotency_key_reused", status: 409, meaning: "the Idempotency-Key was used with another body"),
            .init(error: "already_on_plan", status: 409, meaning: "the workspace is on that plan"),
            .init(error: "already_canceling", status: 409, meaning: "the subscription is already set to cancel"),
            .init(error: "not_canceling", status: 409, meaning: "the subscription is not set to cancel"),
            .init(error: "nothing_to_cancel", status: 409, meaning: "there is no paid subscription to cancel"),
            .init(error: "plan_not_for_sale", status: 409, meaning: "the plan cannot be bought here"),
            .init(error: "no_billing_account", status: 409, meaning: "the workspace has no billing account yet"),
            .init(error: "rollback_impossible", status: 409, meaning: "the recorded state cannot be restored"),
            .init(error: "expired", status: 409, meaning: "an approval request expired before it was decided"),
            .init(error: "gone", status: 410, meaning: "an invitation was used, revoked or expired"),
            .init(error: "payload_too_large", status: 413, meaning: "the body is over the limit"),
            .init(error: "validation_error", status: 422, meaning: "the request is malformed: issues[] names each field"),
            .init(error: "credentials_rejected", status: 422, meaning: "the cloud credentials were refused"),
            .init(error: "no_fix_action", status: 422, meaning: "the rule has no automatic fix"),
            .init(error: "plan_failed", status: 422, meaning: "reading the resource to plan a fix failed"),
            .init(error: "rate_limited", status: 429, meaning: "too many requests: Retry-After says when to come back"),
            .init(error: "remediation_daily_limit", status: 429, meaning: "the policy's fixes per day are used up"),
            .init(error: "internal_error", status: 500, meaning: "a fault on our side (the correlation id finds it in the logs)"),
            .init(error: "payment_provider_error", status: 502, meaning: "the payment provider refused the call"),
            .init(
                error: "unavailable", status: 503,
                meaning: "a dependency (a service, the bus, the database) cannot answer now; retry after Retry-After"),
            .init(error: "payment_provider_unavailable", status: 503, meaning: "the payment provider cannot be reached"),
            .init(error: "billing_unavailable", status: 503, meaning: "billing cannot be reached"),
            .init(error: "webhooks_not_configured", status: 503, meaning: "the payment webhook secret is not set"),
            .init(error: "timeout", status: 504, meaning: "the service did not answer in time"),
        ])
}
