#!/usr/bin/env python3
"""Generates contracts/openapi.yaml, contracts/asyncapi.yaml and contracts/schemas/ from one table.

It also writes the Swift subjects (libs/Platform/Contracts/Subjects.generated.swift) and the gateway route table
(libs/Services/GatewayService/RouteTable.generated.swift); the services are checked against these
files by the tests; edit this table, run `python3 scripts/gen-contracts.py`, commit both."""
import json
import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "contracts")

S = lambda **kw: {"type": "string", **kw}
I = lambda **kw: {"type": "integer", **kw}
B = {"type": "boolean"}
DT = S(format="date-time")
UUID = S(format="uuid")
NULL = lambda s: {"anyOf": [s, {"type": "null"}]}
ROLE = S(enum=["owner", "admin", "analyst", "viewer", "billing"])


def obj(required=(), additional=False, **props):
    # A trailing underscore lets a property be named like a Python keyword (global_ → global).
    props = {(k[:-1] if k.endswith("_") else k): v for k, v in props.items()}
    o = {"type": "object", "properties": props, "additionalProperties": additional}
    if required:
        o["required"] = list(required)
    return o


def page(item, capped=False):
    # Lists that can reach millions of rows (findings, finding events) count at most 1,000 matches:
    # `total_capped: true` says there are more (exact counts by status and severity are in the summary).
    extra = {"total_capped": {"type": "boolean"}} if capped else {}
    return obj(["items", "next_cursor"], items={"type": "array", "items": item}, next_cursor=NULL(S()), total=I(), **extra)


MODELS = {
    "Error": obj(["error", "message"], error=S(), message=S(), correlation_id=S(),
                 issues={"type": "array", "items": obj(["path", "message"], path=S(), message=S())},
                 quota=obj(["name", "limit", "used", "resets_at"], name=S(), limit=I(), used=I(), resets_at={"anyOf": [S(format="date-time"), {"type": "null"}]})),
    "User": obj(["id", "email", "full_name", "email_verified"], id=UUID, email=S(format="email"), full_name=S(),
                email_verified=B, created_at=DT),
    "Workspace": obj(["id", "slug", "name"], id=UUID, slug=S(), name=S(), parent_id=UUID, settings={"type": "object"},
                     created_at=DT),
    "Message": obj(["message"], message=S()),
    "Empty": obj(),
}
MODELS["Tokens"] = obj(["user", "access_token", "refresh_token", "token_type", "expires_in"], user=MODELS["User"],
                       workspace=MODELS["Workspace"], access_token=S(), refresh_token=S(pattern="^vrt_"),
                       token_type=S(enum=["bearer"]), expires_in=I())
MODELS["Me"] = obj(["kind", "workspace", "role", "scopes"], kind=S(enum=["user", "api_key"]), user=MODELS["User"],
                   workspace=MODELS["Workspace"], role=ROLE, scopes={"type": "array", "items": S()}, api_key_id=UUID,
                   acting_via_parent=UUID,
                   memberships={"type": "array", "items": obj(["workspace", "role"], workspace=MODELS["Workspace"], role=ROLE)})
MODELS["TeamMember"] = obj(["membership_id", "user_id", "email", "full_name", "role", "joined_at"], membership_id=UUID,
                           user_id=UUID, email=S(), full_name=S(), role=ROLE, joined_at=DT)
MODELS["Invitation"] = obj(["id", "email", "role", "status", "expires_at", "created_at"], id=UUID, email=S(), role=ROLE,
                           status=S(enum=["pending", "accepted", "revoked", "expired"]), invited_by=UUID,
                           expires_at=DT, created_at=DT, accepted_at=DT)
MODELS["InvitationCheck"] = obj(["email", "role", "workspace", "user_exists", "needs_password", "expires_at"], email=S(),
                                role=ROLE, workspace=MODELS["Workspace"], user_exists=B, needs_password=B, expires_at=DT)
MODELS["InvitationAccepted"] = obj(["user", "workspace", "membership_id", "role"], user=MODELS["User"],
                                   workspace=MODELS["Workspace"], membership_id=UUID, role=ROLE, access_token=S(),
                                   refresh_token=S(), token_type=S(), expires_in=I())
MODELS["ApiKey"] = obj(["id", "name", "prefix", "scopes", "role", "created_at"], id=UUID, name=S(), prefix=S(pattern="^vgl_"),
                       scopes={"type": "array", "items": S(enum=["read", "write", "admin"])}, role=ROLE, created_at=DT,
                       expires_at=DT, last_used_at=DT, key=S(pattern="^vgl_[A-Za-z0-9_-]{43}$", description="returned once, on create"))
SEVS = S(enum=["critical", "high", "medium", "low", "info"])
MODELS["RemediationPolicy"] = obj(["mode", "require_approval_from_roles", "dry_run_default", "allow_self_approval", "approval_ttl_hours",
                                   "max_actions_per_day"],
                                  mode=S(enum=["disabled", "manual", "auto"]), auto_max_severity=NULL(SEVS),
                                  allowed_actions=NULL({"type": "array", "items": S()}),
                                  require_approval_from_roles={"type": "array", "items": S(enum=["owner", "admin", "analyst"])},
                                  dry_run_default=B, allow_self_approval=B, approval_ttl_hours=I(minimum=1, maximum=720),
                                  max_actions_per_day=I(minimum=0, maximum=10000), updated_by=S(), updated_at=DT)
FINDING_DELIVERY = S(enum=["per_finding", "batch"], description="finding events: one delivery per finding (default), or one per bus "
                     "batch of type finding.batch with data.findings[] (those the endpoint's events, min_severity and connection_ids match)")
MODELS["WebhookEndpoint"] = obj(["id", "url", "events", "is_active", "created_at", "updated_at"], id=UUID, url=S(format="uri"),
                                description=S(), events={"type": "array", "items": S()},
                                min_severity=S(enum=["info", "low", "medium", "high", "critical"]),
                                connection_ids={"type": "array", "items": UUID}, is_active=B, disabled_reason=S(), created_at=DT,
                                updated_at=DT, secret=S(pattern="^whsec_", description="returned once, on create"),
                                finding_delivery=FINDING_DELIVERY)
MODELS["Delivery"] = obj(["id", "endpoint_id", "event_id", "event_type", "status", "attempts", "created_at"], id=UUID, endpoint_id=UUID,
                         event_id=UUID, event_type=S(), status=S(enum=["pending", "delivered", "failed"]), attempts=I(), last_status=I(),
                         last_error=S(), last_response=S(), last_latency_ms=I(), created_at=DT, delivered_at=DT, next_attempt_at=DT)
MODELS["AuditRecord"] = obj(["id", "at", "action", "resource_type", "changes"], id=UUID, at=DT, actor=S(), action=S(), resource_type=S(),
                            resource_id=S(), workspace=UUID, correlation_id=S(), ip=S(), user_agent=S(), changes={"type": "object"})
MODELS["Channel"] = obj(["id", "name", "method", "config", "enabled", "events", "created_at", "updated_at"], id=UUID, name=S(),
                        method=S(enum=["email", "slack", "webhook"]), config={"type": "object", "additionalProperties": S(),
                                                                              "description": "masked: URLs show only their host"},
                        enabled=B, events={"type": "array", "items": S()}, min_severity=S(), created_at=DT, updated_at=DT)
MODELS["NotificationPolicy"] = obj(["delivery", "notification_trigger_mode"], delivery=S(enum=["digest", "every_event"]),
                                   notification_trigger_mode=S(enum=["scan_complete", "waste_only"]), updated_at=DT)
AWS_CREDS = obj(access_key_id=S(pattern="^(AKIA|ASIA)[A-Z0-9]{16}$"), secret_access_key=S(minLength=40, maxLength=40),
                session_token=S(), role_arn=S(), external_id=S(), private_key=S(description="linux (SSH) and repo (SSH): a private key"),
                token=S(description="repo: an HTTPS access token"))
CONN_SETTINGS = obj(regions={"type": "array", "items": S(pattern="^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")}, endpoint_url=S(format="uri"),
                    proxy_id=UUID, mode=S(enum=["agent", "ssh"]), connector_id=UUID, host=S(), port=I(minimum=1, maximum=65535), username=S(),
                    host_key=S(), url=S(format="uri", description="web: the target"), ca_pem=S(description="web: extra PEM CA bundle"),
                    headers={"type": "object", "additionalProperties": S()}, scan_paths={"type": "array", "items": S()},
                    http_port=I(minimum=1, maximum=65535), clone_url=S(description="repo: https://, ssh:// or git@host:path"),
                    default_branch=S(), archived=B)
MODELS["Domain"] = obj(["id", "domain", "status", "token", "methods", "created_at"], id=UUID, domain=S(), status=S(enum=["pending", "verified"]),
                       token=S(), methods={"type": "object", "additionalProperties": {"type": "object", "additionalProperties": S()}},
                       method=NULL(S()), verified_at=NULL(DT), last_checked_at=NULL(DT), last_error=NULL(S()), created_at=DT)
MODELS["Proxy"] = obj(["id", "name", "url", "has_password", "created_at", "updated_at"], id=UUID, name=S(),
                      url=S(description="http://host:port of the proxy (credentials are never part of it)"), username=NULL(S()),
                      has_password=B, created_at=DT, updated_at=DT, last_tested_at=NULL(DT), last_test_ok=NULL(B), last_error=NULL(S()))
MODELS["Connection"] = obj(["id", "name", "provider", "status", "credentials", "settings", "created_at"], id=UUID, name=S(),
                           provider=S(enum=["aws", "linux", "web", "repo"]), status=S(enum=["pending", "active", "error"]),
                           credentials={"type": "object", "additionalProperties": S(), "description": "masked"},
                           settings=CONN_SETTINGS, created_at=DT, updated_at=DT, last_scan_at=DT, last_tested_at=DT, last_error=S())
MODELS["Principal"] = obj(["kind", "tenant_id", "tenant_slug", "role", "scopes"], kind=S(enum=["user", "api_key"]), user_id=UUID,
                          api_key_id=UUID, tenant_id=UUID, tenant_slug=S(), role=ROLE, scopes={"type": "array", "items": S()},
                          via_parent_tenant_id=UUID)

SEVERITY = S(enum=["critical", "high", "medium", "low", "info"])
COUNTS = obj(["critical", "high", "medium", "low", "info"], critical=I(), high=I(), medium=I(), low=I(), info=I())
SCAN_STATUS = S(enum=["queued", "running", "completed", "failed", "canceled"])
MODELS["Scan"] = obj(["id", "connection_id", "status", "regions", "services", "created_at", "resources_scanned", "checks_evaluated",
                      "findings_count", "estimated_monthly_savings", "complete", "attempts"],
                     id=UUID, connection_id=UUID, status=SCAN_STATUS, regions={"type": "array", "items": S()},
                     services={"type": "array", "items": S()}, created_at=DT, started_at=DT, completed_at=DT, resources_scanned=I(),
                     checks_evaluated=I(), findings_count=COUNTS, estimated_monthly_savings={"type": "number"},
                     complete=B, account_id=S(), error=S(), attempts=I(), requested_by=S(),
                     api_calls=I(description="AWS API calls made (retries included)"), api_retries=I(),
                     scan_ids={"type": "array", "items": UUID, "description": "every scan one trigger started (connection_ids / all_connections)"},
                     findings_ingested=B, findings_ingested_at=NULL(DT),
                     target_url=S(description="web scans"), target_hostname=S(), mode=S(enum=["passive", "active"]),
                     categories={"type": "object", "additionalProperties": COUNTS, "description": "web scans: failing checks by category and severity"},
                     findings={"type": "array", "items": {"type": "object"}, "description": "web scans with include_findings=true: the failing checks"})
MODELS["Enrollment"] = obj(["id", "name", "token_prefix", "uses", "status", "expires_at", "created_at"], id=UUID, name=S(), token_prefix=S(),
                           max_uses=NULL(I()), uses=I(), status=S(enum=["active", "revoked", "expired", "exhausted"]), expires_at=DT,
                           created_by=NULL(S()), created_at=DT, revoked_at=NULL(DT),
                           token=S(pattern="^vce_", description="returned once, when the enrollment is created"))
MODELS["Connector"] = obj(["id", "name", "hostname", "version", "connector_type", "status", "facts", "created_at"], id=UUID, name=S(),
                          hostname=S(), version=S(), connector_type=S(enum=["linux"]), status=S(enum=["pending", "online", "offline", "revoked"]),
                          last_seen_at=NULL(DT), facts={"type": "object"}, load=NULL({"type": "array", "items": {"type": "number"}}), enrollment_id=NULL(UUID),
                          created_at=DT, revoked_at=NULL(DT),
                          jobs=obj(["queued", "dispatched", "completed", "failed", "cancelled"], queued=I(), dispatched=I(), completed=I(),
                                   failed=I(), cancelled=I()))
SIGNED = "signed with the connector secret (X-Vigil-Connector, X-Vigil-Timestamp, X-Vigil-Nonce, X-Vigil-Signature)"
OBJ_ = {"type": "object"}
THRESHOLDS = obj(cpu_percent={"type": "number", "minimum": 0, "maximum": 100}, network_mb={"type": "number", "minimum": 0},
                 connections={"type": "number", "minimum": 0}, requests={"type": "number", "minimum": 0},
                 lookback_days=I(minimum=1, maximum=90), min_monthly_savings={"type": "number", "minimum": 0},
                 age_days=I(minimum=1, maximum=3650))
MODELS["ScanPolicy"] = obj(["global", "services", "effective"], global_=THRESHOLDS, services={"type": "object", "additionalProperties": THRESHOLDS},
                           effective={"type": "object", "additionalProperties": THRESHOLDS}, updated_by=NULL(S()), updated_at=NULL(DT))
SCHEDULE_OUTCOME = S(enum=["pending", "started", "skipped_quota", "failed"])
MODELS["Schedule"] = obj(["id", "name", "connection_id", "timezone", "enabled", "status", "next_run_at", "created_at", "updated_at"],
                         id=UUID, name=S(), connection_id=UUID, cron=NULL(S()), interval_minutes=NULL(I(minimum=5)), timezone=S(),
                         enabled=B, status=S(enum=["active", "paused"]), regions=NULL({"type": "array", "items": S()}),
                         services=NULL({"type": "array", "items": S()}),
                         next_run_at=NULL(DT), last_run_at=NULL(DT), last_outcome=NULL(SCHEDULE_OUTCOME), created_by=NULL(S()),
                         created_at=DT, updated_at=DT)
MODELS["ScheduleRun"] = obj(["id", "schedule_id", "planned_at", "trigger", "outcome", "created_at"],
                            id=UUID, schedule_id=UUID, planned_at=DT, started_at=NULL(DT), trigger=S(enum=["schedule", "catch_up", "manual"]),
                            outcome=SCHEDULE_OUTCOME, reason=NULL(S()), scan_id=NULL(UUID), scan_status=NULL(S()), created_at=DT)
SCHEDULE_BODY = dict(name=S(minLength=1, maxLength=200), connection_id=UUID,
                     cron=S(description="5 fields: minute hour day-of-month month day-of-week"),
                     interval_minutes=I(minimum=5, maximum=44640), timezone=S(description="IANA time zone, default UTC"), enabled=B,
                     regions={"type": "array", "items": S()}, services={"type": "array", "items": S()})
PART = obj(["service", "region", "status", "resources", "checks", "failures"], service=S(), region=S(),
           status=S(enum=["pending", "running", "completed", "failed", "unavailable"]), resources=I(), checks=I(), failures=I(), error=S())
SCAN_RESULT = obj(["fingerprint", "rule_id", "status", "severity", "title", "resource_id", "resource_type", "resource_name", "region",
                   "service", "evidence"],
                  fingerprint=S(pattern="^[0-9a-f]{40}$"), rule_id=S(), status=S(enum=["PASS", "FAIL"]), severity=SEVERITY, title=S(),
                  resource_id=S(), resource_type=S(), resource_name=S(), region=S(), service=S(), evidence={"type": "object"},
                  estimated_monthly_savings={"type": "number"}, tags={"type": "object", "additionalProperties": S()})

FSTATUS = S(enum=["open", "resolved", "suppressed", "accepted_risk"])
OBJ = {"type": "object"}
STRS = {"type": "array", "items": S()}
COMPLIANCE = {"type": "object", "additionalProperties": STRS, "description": "framework id -> control ids"}
REMEDIATION = obj(["console"], console=S(), cli=S())
FEVENT = obj(["id", "finding_id", "connection_id", "rule_code", "severity", "event_type", "to_status", "created_at"], id=UUID, finding_id=UUID,
             connection_id=UUID, rule_code=S(), severity=SEVERITY,
             event_type=S(enum=["opened", "resolved", "reopened", "suppressed", "accepted_risk", "expired"]),
             from_status=S(), to_status=FSTATUS, actor=S(), reason=S(), scan_id=UUID, created_at=DT)
MODELS["FindingEvent"] = FEVENT
MODELS["Finding"] = obj(["id", "fingerprint", "rule_code", "title", "severity", "status", "provider", "service", "resource_id", "resource_type",
                         "resource_name", "region", "connection_id", "scan_job_id", "evidence", "compliance", "auto_fix", "first_seen_at",
                         "last_seen_at"],
                        id=UUID, fingerprint=S(), rule_code=S(), title=S(), severity=SEVERITY, status=FSTATUS, provider=S(), service=S(),
                        resource_id=S(), resource_type=S(), resource_name=S(), region=S(), connection_id=UUID, scan_job_id=UUID, category=S(),
                        description=S(), rationale=S(), remediation=REMEDIATION, cwe=S(), evidence=OBJ, compliance=COMPLIANCE,
                        check_id=S(description="FixVibe's name for rule_code"), scan_id=UUID, cwe_id=S(),
                        estimated_monthly_savings={"type": "number"}, auto_fix=B, fix_action=S(), tags={"type": "object", "additionalProperties": S()},
                        first_seen_at=DT, last_seen_at=DT, resolved_at=DT, status_reason=S(), status_actor=S(), status_expires_at=DT,
                        suppression_rule_id=UUID, history={"type": "array", "items": FEVENT})
MODELS["Rule"] = obj(["id", "title", "severity", "default_severity", "enabled", "custom", "provider", "service", "resource_type", "category",
                      "fail_if", "description", "rationale", "remediation", "compliance", "auto_fix"],
                     id=S(), title=S(), severity=SEVERITY, default_severity=SEVERITY, enabled=B, custom=B, provider=S(), service=S(),
                     resource_type=S(), category=S(), applies_if=OBJ, fail_if=OBJ, description=S(), rationale=S(), remediation=REMEDIATION, cwe=S(),
                     references=STRS, compliance=COMPLIANCE, fix_action=S(), auto_fix=B,
                     savings=obj(usd_per_month={"type": "number"}, usd_per_unit={"type": "number"}, unit_path=S()))
MODELS["Report"] = obj(["id", "type", "format", "title", "status", "created_at", "download_url", "parameters"], id=UUID,
                       type=S(enum=["executive_summary", "compliance", "findings_export"]),
                       format=S(enum=["json", "csv", "html", "pdf", "sarif", "ocsf"]), title=S(), status=S(enum=["completed", "failed"]),
                       size=I(), content_type=S(), created_at=DT, completed_at=DT, download_url=S(), parameters=OBJ)
MODELS["SuppressionRule"] = obj(["id", "name", "tags", "reason", "created_at"], id=UUID, name=S(), connection_id=UUID, rule=S(), region=S(),
                                resource=S(), tags={"type": "object", "additionalProperties": S()}, reason=S(), expires_at=DT, created_by=S(),
                                created_at=DT, matched=I())
SCORE = obj(["passed", "failed", "not_assessed", "assessed", "score"], passed=I(), failed=I(), not_assessed=I(), assessed=I(),
            score={"type": "number", "minimum": 0, "maximum": 100})
FSCORE = obj(["framework_id", "name", "passed", "failed", "not_assessed", "assessed", "score"], framework_id=S(), name=S(), passed=I(),
             failed=I(), not_assessed=I(), assessed=I(), score={"type": "number"})
FRAMEWORK = obj(["id", "name", "version", "description", "controls", "rules"], id=S(), name=S(), version=S(), description=S(), controls=I(), rules=I())
MODELS["ComplianceScore"] = obj(["overall", "frameworks", "connections", "scans", "generated_at"], overall=SCORE,
                                frameworks={"type": "array", "items": FSCORE},
                                connections={"type": "array", "items": obj(["connection_id", "scan_id", "overall", "frameworks"], connection_id=UUID,
                                                                           scan_id=UUID, overall=SCORE, frameworks={"type": "array", "items": FSCORE})},
                                scans={"type": "array", "items": UUID}, generated_at=DT)
MODELS["FrameworkDetail"] = obj(["framework", "score", "controls", "scans", "generated_at"], framework=FRAMEWORK, score=FSCORE,
                                controls={"type": "array", "items": obj(["control_id", "status", "rules", "failing_resources"], control_id=S(),
                                                                        status=S(enum=["passed", "failed", "not_assessed"]),
                                                                        rules={"type": "array", "items": OBJ},
                                                                        failing_resources={"type": "array", "items": OBJ})},
                                scans={"type": "array", "items": UUID}, generated_at=DT)
STATUS_CHANGE = obj(["reason"], reason=S(minLength=3, maxLength=1000), expires_at=DT)

PAGE_Q = ["limit", "cursor", "offset"]
PAGEREQ = obj(limit=I(minimum=1, maximum=200), cursor=S(), offset=I(minimum=0), action=S(), resource_type=S(), actor=S(),
              since=DT, until=DT, connection_id=UUID, status=S(), severity=S(), rule_id=S(), provider=S(), rule_code=S(), scan_job_id=UUID,
              auto_fix_only=B, search=S(), sort_by=S(enum=["created_at", "first_seen_at", "last_seen_at", "severity", "resolved_at"]),
              finding_id=UUID, event_type=S(), start=S(), end=S(), service=S(), category=S(), framework=S(), enabled=B, custom=B,
              framework_id=S(), connector_type=S(), report_type=S(enum=["executive_summary", "compliance", "findings_export"]),
              source=S(enum=["builtin", "custom"]), check_id=S(), include_findings=B, include_archived=B, reveal=B, skip=I(minimum=0),
              scan_type=S(enum=["secrets_scan", "sbom_scan", "semgrep_scan", "deep_ai_scan"]), scan_batch_id=UUID, repository_id=UUID)

REPOSITORY = obj(["id", "name", "full_name", "clone_url", "archived", "status", "credentials", "created_at"], id=UUID, name=S(), full_name=S(),
                 clone_url=S(), default_branch=NULL(S()), archived=B, status=S(enum=["pending", "active", "error"]),
                 credentials={"type": "object", "additionalProperties": S(), "description": "masked"}, created_at=DT, updated_at=DT,
                 last_scan_at=NULL(DT), last_error=NULL(S()))
SCAN_BATCH = obj(["id", "repository_id", "scan_type", "status", "created_at", "repositories_total", "findings_count", "findings_ingested"],
                 id=UUID, repository_id=UUID, scan_type=S(), status=SCAN_STATUS, created_at=DT, started_at=NULL(DT), completed_at=NULL(DT),
                 repositories_total=I(), findings_count=OBJ, findings_ingested=B, error=NULL(S()))

REPO_DEPENDENCY = NULL(obj(["package", "version", "ecosystem", "purl", "advisories"], package=S(), version=S(), ecosystem=S(), purl=S(),
                           fixed_version=NULL(S()), advisories={"type": "array", "items": S()}, summary=NULL(S())))
REPO_CODE = NULL(obj(["rule", "message"], rule=S(), message=S(), end_line=NULL(I()), cwe=NULL(S()), category=NULL(S())))
REPO_FINDING = obj(["id", "repository_id", "scan_batch_id", "scan_type", "check_id", "severity", "status", "title", "first_seen_at"],
                   id=UUID, repository_id=UUID, scan_batch_id=UUID, scan_type=S(), check_id=S(), severity=SEVERITY,
                   status=S(enum=["open", "resolved", "ignored", "false_positive", "needs_manual_review"]), title=S(), description=NULL(S()),
                   remediation=OBJ, cwe_id=NULL(S()), file=NULL(S()), line=NULL(I()), commit=NULL(S()), commit_line=NULL(I()),
                   detector=NULL(S()), preview=NULL(S()), in_history_only=NULL(B), dependency=REPO_DEPENDENCY, code=REPO_CODE, first_seen_at=DT, last_seen_at=DT, resolved_at=NULL(DT),
                   status_reason=NULL(S()))

FIX_STATUS = S(enum=["pending", "running", "completed", "failed", "canceled"])
FIX_OPTIONS = obj(env_names={"type": "object", "additionalProperties": S(pattern="^[A-Za-z_][A-Za-z0-9_]{0,63}$"),
                             "description": "finding id -> environment variable name"},
                  env_example=S(maxLength=200, description="example environment file (default .env.example)"))
PULL_REQUEST = obj(["branch_name", "base_branch", "commit", "remote", "provider", "state", "created_at"], branch_name=S(), base_branch=S(),
                   commit=S(), remote=S(), provider=S(enum=["git", "github", "gitlab"]), state=S(enum=["branch_pushed", "open"]),
                   url=NULL(S()), number=NULL(I()), title=S(), created_at=DT, forge_error=NULL(S()))
FIX = obj(["id", "repository_id", "finding_ids", "title", "instructions", "status", "created_at"], id=UUID, repository_id=UUID,
          finding_ids={"type": "array", "items": UUID}, title=S(), instructions=S(), options=FIX_OPTIONS, status=FIX_STATUS,
          source_repo=NULL(S()), source_scan_branch=NULL(S()), base_commit=NULL(S()), files_changed={"type": "array", "items": S()},
          outcomes={"type": "array", "items": obj(["finding_id", "outcome", "file", "message"], finding_id=UUID,
                                                  outcome=S(enum=["fixed", "history_only", "not_found", "manual"]), file=S(), variable=NULL(S()),
                                                  message=S())},
          steps=I(), attempts=I(), error=NULL(S()), created_by=S(), created_at=DT, started_at=NULL(DT), completed_at=NULL(DT),
          last_activity_at=NULL(DT), pull_requests={"type": "array", "items": PULL_REQUEST})


def add_links(paths):
    """OpenAPI links from each create (POST answering 201 with an id) to the operations on what it created
    (`<collection>/{x_id}…`), so clients and stateful fuzzers can follow them."""
    for path, ops in paths.items():
        create = ops.get("post")
        if not create or "201" not in create["responses"]:
            continue
        base = path.rstrip("/")
        links = {}
        for other, other_ops in sorted(paths.items()):
            rest = other[len(base):]
            if not other.startswith(base + "/{") or rest.count("{") != 1:
                continue
            param = rest[2:rest.index("}")]
            for m, o in sorted(other_ops.items()):
                links[f"{m}_{o['operationId']}"[:60]] = {"operationId": o["operationId"], "parameters": {param: "$response.body#/id"}}
        if links:
            create["responses"]["201"]["links"] = links


# Lists whose pages are larger than the usual 200 (the service enforces the same bound).
LIMIT_MAX = {"/api/v1/findings/": 500, "/api/v1/rules/": 500, "/api/v1/findings/export": 10_000_000}
# Routes the gateway answers by walking a keyset-paged list subject and streaming every item as one JSON array.
EXPORTS = {"/api/v1/findings/export"}


def query_schema(path, name):
    if name == "limit" and path in LIMIT_MAX:
        return I(minimum=1, maximum=LIMIT_MAX[path])
    return PAGEREQ["properties"][name]


def skip_page(item):
    return obj(["items", "total", "limit", "skip"], items={"type": "array", "items": item}, total=I(), limit=I(), skip=I())


# (method, path, subject, access, status, request body schema, reply schema, summary, query)
ROUTES = [
    ("post", "/api/v1/auth/signup", "vigil.identity.auth.signup", "public", 201,
     obj(["email", "password", "full_name", "workspace_name"], email=S(format="email"), password=S(minLength=10), full_name=S(), workspace_name=S()),
     "Tokens", "Create a user and their first workspace", []),
    ("post", "/api/v1/auth/login", "vigil.identity.auth.login", "public", 200, obj(["email", "password"], email=S(), password=S()), "Tokens", "Sign in", []),
    ("post", "/api/v1/auth/refresh", "vigil.identity.auth.refresh", "public", 200, obj(["refresh_token"], refresh_token=S()), "Tokens",
     "Rotate a refresh token (reuse of a spent one revokes its family)", []),
    ("post", "/api/v1/auth/forgot-password", "vigil.identity.auth.forgot_password", "public", 202, obj(["email"], email=S()), "Message",
     "Send a reset link if the account exists (always 202)", []),
    ("post", "/api/v1/auth/reset-password", "vigil.identity.auth.reset_password", "public", 200,
     obj(["token", "new_password"], token=S(), new_password=S(minLength=10)), "Message", "Reset a password with a single-use token", []),
    ("post", "/api/v1/auth/change-password", "vigil.identity.auth.change_password", "member", 200,
     obj(["current_password", "new_password"], current_password=S(), new_password=S(minLength=10)), "Message", "Change the signed-in user's password", []),
    ("post", "/api/v1/auth/resend-verification", "vigil.identity.auth.resend_verification", "optional", 200, obj(email=S()), "Message",
     "Send a new verification email", []),
    ("post", "/api/v1/auth/verify-email/{token}", "vigil.identity.auth.verify_email", "public", 200, None, "Message", "Verify an email address", []),
    ("get", "/api/v1/auth/me", "vigil.identity.auth.me", "member", 200, None, "Me", "The caller, their workspace, role and scopes", []),
    ("get", "/api/v1/me", "vigil.identity.auth.me", "member", 200, None, "Me", "Alias of /auth/me (the calling key's workspace, scopes and role)", []),
    ("get", "/api/v1/ping", "vigil.identity.health.ping", "public", 200, None, obj(["status"], status=S(), service=S()), "Bus round trip to identity", []),
    ("get", "/api/v1/users/team", "vigil.identity.team.list", "viewer", 200, None, page(MODELS["TeamMember"]), "List workspace members", PAGE_Q),
    ("post", "/api/v1/users/invite", "vigil.identity.invitation.create", "admin", 201, obj(["email"], email=S(), role=ROLE), "Invitation", "Invite a user", []),
    ("patch", "/api/v1/users/team/{membership_id}/role", "vigil.identity.team.update_role", "admin", 200, obj(["role"], role=ROLE), "TeamMember",
     "Change a member's role", []),
    ("delete", "/api/v1/users/team/{membership_id}", "vigil.identity.team.remove", "member", 204, None, "Empty",
     "Remove a member (admins) or leave (self)", []),
    ("patch", "/api/v1/users/profile", "vigil.identity.user.update_profile", "member", 200, obj(full_name=S()), "User", "Update the caller's profile", []),
    ("get", "/api/v1/tenants/current", "vigil.identity.tenant.get", "member", 200, None, "Workspace", "The selected workspace", []),
    ("patch", "/api/v1/tenants/current", "vigil.identity.tenant.update", "admin", 200, obj(name=S()), "Workspace", "Rename the workspace", []),
    ("patch", "/api/v1/tenants/current/remediation-policy", "vigil.remediation.policy.update", "admin", 200,
     obj(mode=S(enum=["disabled", "manual", "auto"]), auto_max_severity=SEVS, allowed_actions={"type": "array", "items": S()},
         require_approval_from_roles={"type": "array", "items": S(enum=["owner", "admin", "analyst"])}, dry_run_default=B,
         allow_self_approval=B, approval_ttl_hours=I(minimum=1, maximum=720), max_actions_per_day=I(minimum=0, maximum=10000)),
     "RemediationPolicy", "How fixes get approved (disabled, manual, or auto up to a severity)", []),
    ("patch", "/api/v1/tenants/current/settings", "vigil.identity.tenant.update_settings", "admin", 200,
     obj(["settings"], settings={"type": "object"}), "Workspace", "Merge workspace settings", []),
    ("get", "/api/v1/tenants/msp/workspaces", "vigil.identity.tenant.list_children", "admin", 200, None, page(MODELS["Workspace"]),
     "MSP: child workspaces of this workspace", PAGE_Q),
    ("post", "/api/v1/tenants/msp/workspaces", "vigil.identity.tenant.create_child", "admin", 201, obj(["name"], name=S()), "Workspace",
     "MSP: create a child workspace", []),
    ("post", "/api/v1/api-keys/", "vigil.identity.apikey.create", "analyst", 201,
     obj(["name"], name=S(), scopes={"type": "array", "items": S(enum=["read", "write", "admin"])}, expires_at=DT, role=ROLE), "ApiKey",
     "Create an API key (the key is shown once)", []),
    ("get", "/api/v1/api-keys/", "vigil.identity.apikey.list", "viewer", 200, None, page(MODELS["ApiKey"]), "List API keys (prefixes only)", PAGE_Q),
    ("delete", "/api/v1/api-keys/{key_id}", "vigil.identity.apikey.revoke", "analyst", 204, None, "Empty", "Revoke an API key", []),
    ("post", "/api/v1/invitations/", "vigil.identity.invitation.create", "admin", 201, obj(["email"], email=S(), role=ROLE), "Invitation", "Invite a user", []),
    ("get", "/api/v1/invitations/", "vigil.identity.invitation.list", "admin", 200, None, page(MODELS["Invitation"]), "List invitations", PAGE_Q),
    ("get", "/api/v1/invitations/validate/{token}", "vigil.identity.invitation.validate", "public", 200, None, "InvitationCheck",
     "Preflight an invitation token", []),
    ("post", "/api/v1/invitations/accept/{token}", "vigil.identity.invitation.accept", "public", 200,
     obj(full_name=S(), password=S(minLength=10)), "InvitationAccepted", "Accept an invitation (new users set a password)", []),
    ("post", "/api/v1/invitations/{invitation_id}/resend", "vigil.identity.invitation.resend", "admin", 200, None, "Invitation",
     "Resend an invitation with a fresh token", []),
    ("delete", "/api/v1/invitations/{invitation_id}", "vigil.identity.invitation.revoke", "admin", 204, None, "Empty", "Revoke an invitation", []),
    ("get", "/api/v1/connections/", "vigil.scans.connection.list", "viewer", 200, None, page(MODELS["Connection"]), "List connections", PAGE_Q),
    ("post", "/api/v1/connections/", "vigil.scans.connection.create", "admin", 201,
     obj(["name", "provider"], name=S(), provider=S(enum=["aws", "linux", "web", "repo"]), credentials=AWS_CREDS, settings=CONN_SETTINGS),
     "Connection", "Connect a cloud account (credentials are sealed and only ever shown masked)", []),
    ("post", "/api/v1/connections/linux/generate-key", "vigil.scans.connection.generate_key", "admin", 200, None,
     obj(["algorithm", "public_key", "private_key", "fingerprint", "instructions"], algorithm=S(), public_key=S(pattern="^ssh-rsa "),
         private_key=S(description="PEM, returned once"), fingerprint=S(pattern="^SHA256:"), instructions={"type": "array", "items": S()}),
     "Generate an RSA-4096 key pair for SSH scanning (private key shown once)", []),
] + [("get", f"/api/v1/connections/{p}/{k}-instructions", f"vigil.scans.instructions.{p}_{k}", "member", 200, None,
      obj(["provider", "title", "steps", "commands", "variables", "notes"], provider=S(), title=S(), steps={"type": "array", "items": S()},
          commands={"type": "array", "items": S()}, variables={"type": "array", "items": S()}, notes={"type": "array", "items": S()}),
      f"{p} {k} instructions", []) for p, k in [("linux", "install"), ("windows", "install"), ("windows", "setup"), ("azure", "setup"), ("gcp", "setup")]
] + [
    ("get", "/api/v1/connections/{connection_id}", "vigil.scans.connection.get", "viewer", 200, None, "Connection", "One connection", []),
    ("patch", "/api/v1/connections/{connection_id}", "vigil.scans.connection.update", "admin", 200,
     obj(name=S(), credentials=AWS_CREDS, settings=CONN_SETTINGS), "Connection", "Rename, re-key or re-configure a connection", []),
    ("delete", "/api/v1/connections/{connection_id}", "vigil.scans.connection.delete", "admin", 204, None, "Empty", "Delete a connection", []),
    ("post", "/api/v1/connections/{connection_id}/test", "vigil.scans.connection.test", "analyst", 200, None,
     obj(["ok", "message"], ok=B, account_id=S(), arn=S(), message=S()), "Check the credentials with STS GetCallerIdentity", []),
    ("post", "/api/v1/scans", "vigil.scans.scan.submit", "analyst", 200,
     obj(["target"], target=S(format="uri", description="the URL to scan"), mode=S(enum=["passive", "active"])),
     obj(["id", "status", "target", "mode", "connection_id"], id=UUID, status=S(enum=["queued"]), target=S(), mode=S(), connection_id=UUID),
     "Scan a URL (FixVibe): the web connection for it is found or created, then a passive scan is queued", []),
    ("post", "/api/v1/scans/trigger", "vigil.scans.scan.trigger", "analyst", 202,
     obj(connection_id=UUID, connection_ids={"type": "array", "items": UUID, "minItems": 1, "maxItems": 100}, all_connections=B,
         regions={"type": "array", "items": S()},
         services={"type": "array", "items": S(enum=["s3", "iam", "ec2", "kms", "cloudtrail", "rds", "lambda", "sqs", "sns",
                                                     "secretsmanager", "elbv2", "config", "dynamodb", "elasticache", "redshift", "logs"])}),
     "Scan", "Queue a scan of a connection (all its regions and services unless narrowed)", []),
    ("get", "/api/v1/scans/", "vigil.scans.scan.list", "viewer", 200, None, page(MODELS["Scan"]), "List scans, newest first",
     PAGE_Q + ["connection_id", "status"]),
    ("get", "/api/v1/scans/{scan_id}", "vigil.scans.scan.get", "viewer", 200, None, "Scan",
     "One scan with its counts (web scans: target, per-category summary, and the failing checks with include_findings=true)",
     ["include_findings"]),
    ("get", "/api/v1/scans/{scan_id}/progress", "vigil.scans.scan.progress", "viewer", 200, None,
     obj(["scan_id", "status", "phase", "percent_complete", "parts_total", "parts_done", "parts"], scan_id=UUID, status=SCAN_STATUS,
         phase=S(enum=["queued", "connecting", "collecting", "finalizing", "completed", "failed", "canceled"]),
         percent_complete=I(minimum=0, maximum=100), parts_total=I(), parts_done=I(), parts={"type": "array", "items": PART}),
     "Progress of a scan, part by part (service × region)", []),
    ("delete", "/api/v1/scans/{scan_id}", "vigil.scans.scan.delete", "analyst", 204, None, "Empty",
     "Remove a finished scan from the history (its findings and their audit trail stay)", []),
    ("post", "/api/v1/scans/{scan_id}/cancel", "vigil.scans.scan.cancel", "analyst", 200, None, "Scan", "Cancel a queued or running scan", []),
    ("get", "/api/v1/scans/{scan_id}/results", "vigil.scans.scan.results", "viewer", 200, None,
     page({**SCAN_RESULT, "properties": {**SCAN_RESULT["properties"], "id": UUID, "created_at": DT}}),
     "Every (rule, resource) evaluated by the scan, PASS or FAIL", PAGE_Q + ["status", "severity", "rule_id"]),
    ("post", "/api/v1/repositories", "vigil.scans.repository.create", "admin", 201,
     obj(["clone_url"], name=S(maxLength=100), clone_url=S(description="https://, ssh://, git@host:path (file:// and loopback only where allowed)"),
         default_branch=S(), credentials=obj(token=S(description="HTTPS access token"), ssh_key=S(description="SSH private key"))),
     REPOSITORY, "Add a repository (credentials are sealed and only ever shown masked)", []),
    ("get", "/api/v1/repositories", "vigil.scans.repository.list", "viewer", 200, None, skip_page(REPOSITORY), "List repositories",
     ["include_archived", "limit", "skip"]),
    ("get", "/api/v1/repositories/{repository_id}", "vigil.scans.repository.get", "viewer", 200, None, REPOSITORY, "One repository", []),
    ("post", "/api/v1/repositories/{repository_id}/scans", "vigil.scans.repository.scan_create", "analyst", 202,
     obj(["scan_type"], scan_type=S(enum=["secrets_scan", "sbom_scan", "semgrep_scan", "deep_ai_scan"])), SCAN_BATCH,
     "Start a scan batch of the repository (secrets_scan: the tree and every commit of history)", []),
    ("get", "/api/v1/repositories/{repository_id}/scans", "vigil.scans.repository.scan_list", "viewer", 200, None, skip_page(SCAN_BATCH),
     "Scan batches of the repository, newest first", ["scan_type", "status", "limit", "skip"]),
    ("get", "/api/v1/repositories/{repository_id}/scans/{scan_id}", "vigil.scans.repository.scan_get", "viewer", 200, None, SCAN_BATCH,
     "One scan batch", []),
    ("get", "/api/v1/repositories/{repository_id}/scans/{scan_id}/progress", "vigil.scans.repository.scan_progress", "viewer", 200, None,
     obj(["scan_batch_id", "status", "phase", "percent_complete", "repositories"], scan_batch_id=UUID, status=SCAN_STATUS, phase=S(),
         percent_complete=I(minimum=0, maximum=100), repositories_total=I(), repositories_completed=I(), findings_ingested=B,
         repositories={"type": "array", "items": obj(["repository_id", "scan_id", "status", "phase", "percent_complete"], repository_id=UUID,
                                                      scan_id=UUID, status=SCAN_STATUS, phase=S(), percent_complete=I(),
                                                      counters=NULL(obj(commits=I(), tree_files=I(), files_scanned=I(), bytes_scanned=I(),
                                                                        skipped_large=I(), skipped_binary=I(), secrets=I(), lockfiles=I(),
                                                                        components=I(), vulnerable_components=I(), rules=I(),
                                                                        matches=I(), files_total=I())))}),
     "Live progress of a scan batch, with per-repository counters", []),
    ("get", "/api/v1/repositories/{repository_id}/scans/{scan_id}/results", "vigil.scans.repository.scan_results", "viewer", 200, None,
     obj(["scan_batch_id", "status", "total", "findings"], scan_batch_id=UUID, status=SCAN_STATUS, total=I(), by_severity=OBJ,
         findings={"type": "array", "items": obj(["fingerprint", "repository_id", "check_id", "severity", "title"], fingerprint=S(),
                                                  repository_id=UUID, check_id=S(), severity=SEVERITY, title=S(), file=NULL(S()), line=NULL(I()),
                                                  commit=NULL(S()), commit_line=NULL(I()), detector=NULL(S()), preview=NULL(S()),
                                                  in_history_only=NULL(B), dependency=REPO_DEPENDENCY, code=REPO_CODE)}),
     "Every finding of the batch: file, line, commit (where it was introduced), a redacted preview", []),
    ("get", "/api/v1/repositories/{repository_id}/scans/{scan_id}/sbom", "vigil.scans.repository.scan_sbom", "viewer", 200, None,
     obj(["bomFormat", "specVersion", "components"], additional=True, bomFormat=S(enum=["CycloneDX"]), specVersion=S(enum=["1.5"]),
         components={"type": "array", "items": OBJ}, vulnerabilities={"type": "array", "items": OBJ}),
     "The CycloneDX 1.5 JSON SBOM of a completed sbom_scan (components from the branch's lockfiles, vulnerabilities from the OSV export)", []),
    ("get", "/api/v1/repositories/{repository_id}/fixes", "vigil.scans.repository.fix_list", "viewer", 200, None, skip_page(FIX),
     "Fixes of the repository, newest first", ["finding_id", "limit", "skip"]),
    ("post", "/api/v1/repositories/{repository_id}/fixes", "vigil.scans.repository.fix_create", "analyst", 201,
     obj(["title", "instructions"], finding_ids={"type": "array", "items": UUID, "minItems": 1, "maxItems": 50}, title=S(minLength=1, maxLength=200),
         instructions=S(minLength=1, maxLength=4000), source_repo=S(maxLength=300), source_repo_provider=S(enum=["github", "gitlab", "azure_devops"]),
         source_scan_branch=S(maxLength=200), options=FIX_OPTIONS),
     FIX, "Fix findings in a worker: each secret becomes an environment lookup listed in .env.example (never pushed by itself)", []),
    ("get", "/api/v1/repositories/{repository_id}/fixes/{fix_id}", "vigil.scans.repository.fix_get", "viewer", 200, None, FIX, "One fix", []),
    ("get", "/api/v1/repositories/{repository_id}/fixes/{fix_id}/diff", "vigil.scans.repository.fix_diff", "viewer", 200, None,
     obj(["fix_id", "status", "diff", "redacted"], fix_id=UUID, status=FIX_STATUS, diff=NULL(S()), redacted=B, files_changed={"type": "array", "items": S()}),
     "The fix's unified diff (null until completed). Secret values in it are redacted unless reveal=true (admin, audited): "
     "only the revealed diff applies with git apply", ["reveal"]),
    ("get", "/api/v1/repositories/{repository_id}/fixes/{fix_id}/progress", "vigil.scans.repository.fix_progress", "viewer", 200, None,
     obj(["fix_id", "status", "steps", "elapsed_seconds"], fix_id=UUID, status=FIX_STATUS, phase=NULL(S()), steps=I(), elapsed_seconds={"type": "number"},
         started_at=NULL(DT), completed_at=NULL(DT), last_activity_at=NULL(DT), seconds_since_activity=NULL({"type": "number"})),
     "Heartbeat of a fix: status, timings, steps, last activity (no content)", []),
    ("post", "/api/v1/repositories/{repository_id}/fixes/{fix_id}/refine", "vigil.scans.repository.fix_refine", "analyst", 200,
     obj(["instructions"], instructions=S(minLength=1, maxLength=4000), options=FIX_OPTIONS), FIX,
     "Re-run a finished fix with follow-up instructions and changed options", []),
    ("post", "/api/v1/repositories/{repository_id}/fixes/{fix_id}/cancel", "vigil.scans.repository.fix_cancel", "analyst", 200, None, FIX,
     "Cancel a pending or running fix", []),
    ("post", "/api/v1/repositories/{repository_id}/fixes/{fix_id}/pull-requests", "vigil.scans.repository.fix_pull_requests", "admin", 201,
     obj(title=S(maxLength=200), body=S(maxLength=20000), branch_name=S(maxLength=200)),
     obj(["fix_id", "pull_requests"], fix_id=UUID, pull_requests={"type": "array", "items": PULL_REQUEST}),
     "Push the completed fix as a new branch of the remote (never the default branch) and record the pull request; "
     "on GitHub with a token, open it through the API", []),
    ("get", "/api/v1/ops/queues", "vigil.scans.ops.queues", "admin", 200, None,
     obj(["streams", "consumers"],
         streams={"type": "array", "items": obj(["name", "messages", "bytes", "last_sequence", "consumers", "replicas"], name=S(), messages=I(),
                                                bytes=I(), last_sequence=I(), consumers=I(), replicas=I())},
         consumers={"type": "array", "items": obj(["stream", "consumer", "pending", "ack_pending", "redelivered", "ack_floor", "ack_floor_lag"],
                                                  stream=S(), consumer=S(), filter_subject=NULL(S()), pending=I(), ack_pending=I(),
                                                  redelivered=I(), ack_floor=I(), ack_floor_lag=I())}),
     "JetStream streams and every consumer: pending, redelivered, ack floor and its lag (platform workspace owners/admins)", []),
    ("get", "/api/v1/ops/services", "vigil.scans.ops.services", "admin", 200, None,
     obj(["replicas", "services"], services={"type": "object", "additionalProperties": I()},
         replicas={"type": "array", "items": obj(["service", "id", "version", "requests", "errors", "endpoints"], service=S(), id=S(),
                                                 version=S(), started=NULL(S()), uptime_seconds=NULL({"type": "number"}), requests=I(),
                                                 errors=I(), endpoints={"type": "array", "items": obj(
                                                     ["name", "requests", "errors", "average_ms"], name=S(), requests=I(), errors=I(),
                                                     average_ms={"type": "number"}, last_error=NULL(S()))})}),
     "Every replica of every service from $SRV.STATS: version, uptime, requests, errors, time per endpoint (platform workspace)", []),
    ("get", "/api/v1/ops/failures", "vigil.scans.ops.failures", "admin", 200, None,
     obj(["items", "counts", "unavailable"], counts={"type": "object", "additionalProperties": I()},
         unavailable={"type": "array", "items": S()},
         items={"type": "array", "items": obj(["id", "kind", "retryable"], id=S(), kind=S(enum=["dead_letter", "webhook_delivery", "outbox"]),
                                              service=NULL(S()), subject=NULL(S()), stream=NULL(S()), consumer=NULL(S()), reason=NULL(S()),
                                              deliveries=NULL(I()), tenant_id=NULL(S()), at=NULL(S()), detail=NULL(S()), retryable=B)}),
     "Dead-lettered jobs and events (VIGIL_DEAD), webhook deliveries that failed for good, outbox rows not published for 30 s "
     "(platform workspace)", []),
    ("post", "/api/v1/ops/failures/{failure_id}/retry", "vigil.scans.ops.failure_retry", "admin", 200, None,
     obj(["id", "retried", "detail"], id=S(), retried=B, detail=S()),
     "Retry a failure: a dead letter is published again on its subject, a failed delivery queued again (platform workspace)", []),
    ("post", "/api/v1/ops/smoke", "vigil.scans.ops.smoke", "admin", 200, None,
     obj(["ok", "checks"], ok=B, checks={"type": "array", "items": obj(["name", "ok", "ms"], name=S(), ok=B, ms={"type": "number"},
                                                                          detail=NULL(S()))}),
     "A synthetic end-to-end check: every service answers, every database answers, the streams answer (platform workspace)", []),
    ("get", "/api/v1/schedules/", "vigil.scans.schedule.list", "viewer", 200, None, page(MODELS["Schedule"]), "List scan schedules",
     PAGE_Q + ["connection_id"]),
    ("post", "/api/v1/schedules/", "vigil.scans.schedule.create", "analyst", 201, obj(["name", "connection_id"], **SCHEDULE_BODY), "Schedule",
     "Schedule scans of a connection by cron expression or interval, in a time zone", []),
    ("get", "/api/v1/schedules/{schedule_id}", "vigil.scans.schedule.get", "viewer", 200, None, "Schedule", "One schedule", []),
    ("put", "/api/v1/schedules/{schedule_id}", "vigil.scans.schedule.update", "analyst", 200, obj(**SCHEDULE_BODY), "Schedule",
     "Change a schedule (fields left out keep their value)", []),
    ("delete", "/api/v1/schedules/{schedule_id}", "vigil.scans.schedule.delete", "analyst", 200, None, "Message",
     "Delete a schedule and its run history", []),
    ("post", "/api/v1/schedules/{schedule_id}/pause", "vigil.scans.schedule.pause", "analyst", 200, None, "Schedule", "Pause a schedule", []),
    ("post", "/api/v1/schedules/{schedule_id}/resume", "vigil.scans.schedule.resume", "analyst", 200, None, "Schedule",
     "Resume a schedule from now (runs missed while paused are not made up)", []),
    ("post", "/api/v1/schedules/{schedule_id}/run-now", "vigil.scans.schedule.run_now", "analyst", 202, None, "ScheduleRun",
     "Start a scan now with the schedule's settings; the schedule is unchanged", []),
    ("get", "/api/v1/schedules/{schedule_id}/runs", "vigil.scans.schedule.runs", "viewer", 200, None, page(MODELS["ScheduleRun"]),
     "The schedule's runs, newest first: planned and actual start, scan and outcome", PAGE_Q),
    ("post", "/api/v1/connectors/enrollments", "vigil.scans.enrollment.create", "admin", 201,
     obj(["name"], name=S(minLength=1, maxLength=100), max_uses=I(minimum=1, maximum=10000), expires_in_hours=I(minimum=1, maximum=720)),
     "Enrollment", "Create an enrollment token for registering connectors (the token is shown once)", []),
    ("get", "/api/v1/connectors/enrollments", "vigil.scans.enrollment.list", "admin", 200, None, page(MODELS["Enrollment"]),
     "Enrollment tokens without their secrets", PAGE_Q + ["status"]),
    ("delete", "/api/v1/connectors/enrollments/{enrollment_id}", "vigil.scans.enrollment.revoke", "admin", 204, None, "Empty",
     "Revoke an enrollment token (registered connectors keep working)", []),
    ("get", "/api/v1/connectors", "vigil.scans.connector.list", "viewer", 200, None, page(MODELS["Connector"]), "Connectors of the workspace",
     PAGE_Q + ["status", "connector_type"]),
    ("get", "/api/v1/connectors/{connector_id}", "vigil.scans.connector.get", "viewer", 200, None, "Connector",
     "One connector with its status and job counts", []),
    ("post", "/api/v1/connectors/{connector_id}/revoke", "vigil.scans.connector.revoke", "admin", 200, None, "Connector",
     "Revoke a connector: its secret stops working and its unfinished jobs are cancelled", []),
    ("post", "/api/v1/connector-api/register", "vigil.scans.connector_api.register", "public", 201,
     obj(["enrollment_token", "name", "hostname", "version"], enrollment_token=S(pattern="^vce_"), name=S(), hostname=S(), version=S()),
     obj(["connector_id", "connector_secret", "heartbeat_interval_seconds", "poll_interval_seconds"], connector_id=UUID,
         connector_secret=S(pattern="^vcs_", description="returned once"), heartbeat_interval_seconds=I(), poll_interval_seconds=I()),
     "Register a connector with an enrollment token (the token in the body is the credential; every 401 is the same)", []),
    ("post", "/api/v1/connector-api/heartbeat", "vigil.scans.connector_api.heartbeat", "public", 200,
     obj(["version"], version=S(), hostname=S(), facts=OBJ, load={"type": "array", "items": {"type": "number"}}),
     obj(["status", "server_time", "heartbeat_interval_seconds"], status=S(), server_time=DT, heartbeat_interval_seconds=I()),
     "Connector heartbeat, " + SIGNED, []),
    ("post", "/api/v1/connector-api/jobs/poll", "vigil.scans.connector_api.poll", "public", 200, obj(wait_seconds=I(minimum=0, maximum=8)),
     obj(["poll_interval_seconds"], job=NULL(obj(["id", "kind", "parameters", "issued_at"], id=UUID, kind=S(enum=["host_audit"]),
                                                  parameters=OBJ, issued_at=DT)), poll_interval_seconds=I()),
     "Long poll for the next job (at most one), " + SIGNED, []),
    ("post", "/api/v1/connector-api/jobs/{job_id}/result", "vigil.scans.connector_api.result", "public", 200,
     obj(["status"], status=S(enum=["completed", "failed"]), error=S(), chunk_index=I(minimum=0), chunk_count=I(minimum=1, maximum=4096),
         data=S(description="the result's JSON text or this chunk of it"), sha256=S(pattern="^[0-9a-f]{64}$")),
     obj(["job_id", "status", "chunks_received", "chunk_count"], job_id=UUID, status=S(enum=["receiving", "completed", "failed", "cancelled"]),
         chunks_received=I(), chunk_count=I()),
     "Post a job's result, whole or in chunks (idempotent on retry), " + SIGNED, []),
    ("get", "/api/v1/meta/capabilities", "vigil.scans.meta.capabilities", "member", 200, None,
     obj(["api_version", "providers", "scan_types", "rules", "features"], api_version=S(), providers={"type": "array", "items": OBJ_},
         scan_types={"type": "array", "items": S()}, rules=I(), cost_rules=I(), frameworks={"type": "array", "items": S()},
         features={"type": "object", "additionalProperties": B}),
     "Providers, scan types, rule counts and the features on in this deployment", []),
    ("get", "/api/v1/meta/compatibility", "vigil.scans.meta.compatibility", "member", 200, None, {"type": "object"},
     "The API's versioning, deprecation, pagination, webhook signing and error envelope promises", []),
    ("get", "/api/v1/meta/error-model", "vigil.scans.meta.error_model", "member", 200, None,
     obj(["envelope", "codes"], envelope={"type": "object"},
         codes={"type": "array", "items": obj(["error", "status", "meaning"], error=S(), status=I(), meaning=S())}),
     "Every error code with its HTTP status", []),
    ("get", "/api/v1/domains/", "vigil.scans.domain.list", "viewer", 200, None, page(MODELS["Domain"]), "Domains of the workspace (active web scans)",
     PAGE_Q),
    ("post", "/api/v1/domains/", "vigil.scans.domain.create", "admin", 201, obj(["domain"], domain=S(description="host name, optionally :port")),
     "Domain", "List a domain to verify (the token and how to publish it are in the reply)", []),
    ("get", "/api/v1/domains/{domain_id}", "vigil.scans.domain.get", "viewer", 200, None, "Domain", "One domain", []),
    ("post", "/api/v1/domains/{domain_id}/verify", "vigil.scans.domain.verify", "admin", 200, obj(method=S(enum=["file", "dns_txt"])), "Domain",
     "Check the published token (file: https://<domain>/.well-known/vigil-verification.txt)", []),
    ("delete", "/api/v1/domains/{domain_id}", "vigil.scans.domain.delete", "admin", 204, None, "Empty", "Forget a domain", []),
    ("get", "/api/v1/proxies/", "vigil.scans.proxy.list", "viewer", 200, None, page(MODELS["Proxy"]), "List outbound proxy profiles", PAGE_Q),
    ("post", "/api/v1/proxies/", "vigil.scans.proxy.create", "admin", 201,
     obj(["name", "url"], name=S(), url=S(description="http://[user:password@]host:port"), username=S(), password=S()), "Proxy",
     "Add an outbound proxy profile (HTTP CONNECT; the password is sealed and never shown)", []),
    ("get", "/api/v1/proxies/{proxy_id}", "vigil.scans.proxy.get", "viewer", 200, None, "Proxy", "One proxy profile", []),
    ("patch", "/api/v1/proxies/{proxy_id}", "vigil.scans.proxy.update", "admin", 200,
     obj(name=S(), url=S(), username=NULL(S()), password=NULL(S())), "Proxy",
     "Change a proxy profile (a username or password set to null is removed)", []),
    ("delete", "/api/v1/proxies/{proxy_id}", "vigil.scans.proxy.delete", "admin", 204, None, "Empty",
     "Delete a proxy profile no connection uses (409 proxy_in_use otherwise)", []),
    ("post", "/api/v1/proxies/{proxy_id}/test", "vigil.scans.proxy.test", "analyst", 200,
     obj(target_url=S(description="where to tunnel to; default https://sts.amazonaws.com/")),
     obj(["ok", "message", "target_url"], ok=B, message=S(), target_url=S(), status_code=NULL(I()), latency_ms=I()),
     "Open a tunnel through the proxy to a target and send one request", []),
    ("get", "/api/v1/settings/scan-policy", "vigil.scans.scan_policy.get", "viewer", 200, None, "ScanPolicy",
     "The workspace's utilisation thresholds, global, per service and as the next scan applies them", []),
    ("patch", "/api/v1/settings/scan-policy", "vigil.scans.scan_policy.update", "admin", 200,
     obj(global_=THRESHOLDS, services={"type": "object", "additionalProperties": NULL(THRESHOLDS)}), "ScanPolicy",
     "Change thresholds (fields left out keep their value; a service override set to null is removed)", []),
    ("get", "/api/v1/repositories/{repository_id}/findings", "vigil.findings.repository.finding_list", "viewer", 200, None,
     skip_page(REPO_FINDING), "Findings of a repository (file, line, commit, redacted preview), most severe first",
     ["scan_batch_id", "severity", "status", "scan_type", "limit", "skip"]),
    ("get", "/api/v1/repositories/{repository_id}/findings/{finding_id}", "vigil.findings.repository.finding_get", "viewer", 200, None,
     REPO_FINDING, "One finding of a repository", []),
    ("patch", "/api/v1/repositories/{repository_id}/findings/{finding_id}", "vigil.findings.repository.finding_update", "analyst", 200,
     obj(["status"], status=S(enum=["open", "resolved", "ignored", "false_positive", "needs_manual_review"]), reason=S(maxLength=990)),
     REPO_FINDING, "Change a repository finding's status (a finding event records it)", []),
    ("get", "/api/v1/findings/", "vigil.findings.finding.list", "viewer", 200, None, page(MODELS["Finding"], capped=True),
     "Findings with filters, sorting and keyset cursors (limit up to 500)",
     PAGE_Q + ["severity", "status", "provider", "rule_code", "check_id", "since", "connection_id", "scan_job_id", "auto_fix_only", "search",
               "sort_by"]),
    ("get", "/api/v1/findings/export", "vigil.findings.finding.list", "viewer", 200, None, {"type": "array", "items": MODELS["Finding"]},
     "Every finding matching the filters as one JSON array, streamed (one finding a line, in the list's order); limit caps the count",
     ["limit", "severity", "status", "provider", "rule_code", "check_id", "since", "connection_id", "scan_job_id", "auto_fix_only", "search",
      "sort_by"]),
    ("get", "/api/v1/findings/summary", "vigil.findings.finding.summary", "viewer", 200, None,
     obj(["total", "open", "by_severity", "by_status", "open_by_severity", "total_resolved_last_30d", "estimated_monthly_savings", "by_connection"],
         total=I(), open=I(), by_severity=OBJ, by_status=OBJ, open_by_severity=OBJ, total_resolved_last_30d=I(),
         estimated_monthly_savings={"type": "number"}, savings_by_service={"type": "object", "additionalProperties": {"type": "number"}},
         by_connection={"type": "object", "additionalProperties": obj(["open", "resolved_last_30d"], open=I(), resolved_last_30d=I())}),
     "Counts by severity and status, resolutions in the last 30 days, per connection", []),
    ("get", "/api/v1/findings/resolution-trend", "vigil.findings.finding.resolution_trend", "viewer", 200, None,
     obj(["weeks"], weeks={"type": "array", "minItems": 12, "maxItems": 12,
                           "items": obj(["week", "week_start", "opened", "resolved"], week=S(pattern="^[0-9]{4}-W[0-9]{2}$"), week_start=S(),
                                        opened=I(), resolved=I())}),
     "Opened and resolved per ISO week: exactly 12 weeks, oldest first, zero-filled", []),
    ("get", "/api/v1/findings/coverage-summary", "vigil.findings.finding.coverage_summary", "viewer", 200, None,
     obj(["connections", "total_resources", "total_checks", "pass_rate", "rules_available"],
         connections={"type": "array", "items": OBJ}, total_resources=I(), total_checks=I(), pass_rate={"type": "number"}, rules_available=I()),
     "What the latest scans covered, per connection", []),
    ("get", "/api/v1/findings/suppression-rules", "vigil.findings.suppression.list", "viewer", 200, None, page(MODELS["SuppressionRule"]),
     "Suppression rules", PAGE_Q),
    ("post", "/api/v1/findings/suppression-rules", "vigil.findings.suppression.create", "admin", 201,
     obj(["name", "reason"], name=S(), connection_id=UUID, rule=S(description="rule id or glob, e.g. aws.s3.*"), region=S(),
         resource=S(description="regular expression on resource id or name"), tags={"type": "object", "additionalProperties": S()},
         reason=S(), expires_at=DT), "SuppressionRule", "Suppress matching findings, now and as they arrive", []),
    ("delete", "/api/v1/findings/suppression-rules/{suppression_id}", "vigil.findings.suppression.delete", "admin", 204, None, "Empty",
     "Delete a suppression rule (its findings reopen)", []),
    ("get", "/api/v1/findings/{finding_id}", "vigil.findings.finding.get", "viewer", 200, None, "Finding", "One finding with its history", []),
    ("post", "/api/v1/findings/{finding_id}/suppress", "vigil.findings.finding.suppress", "analyst", 200, STATUS_CHANGE, "Finding",
     "Suppress a finding (reason; optional expiry returns it to open)", []),
    ("post", "/api/v1/findings/{finding_id}/handled", "vigil.findings.finding.handled", "analyst", 200, obj(note=S(maxLength=1000)), "Finding",
     "Mark a finding handled (Cloud Waste Scanner's term): suppressed with the note, resolved by the next scan that sees it fixed", []),
    ("get", "/api/v1/findings/handled", "vigil.findings.finding.handled_list", "viewer", 200, None, page(MODELS["Finding"]),
     "Findings marked handled and still suppressed", PAGE_Q),
    ("post", "/api/v1/findings/{finding_id}/accept-risk", "vigil.findings.finding.accept_risk", "analyst", 200, STATUS_CHANGE, "Finding",
     "Accept the risk of a finding (reason; optional expiry)", []),
    ("post", "/api/v1/findings/{finding_id}/reopen", "vigil.findings.finding.reopen", "analyst", 200, obj(reason=S()), "Finding",
     "Reopen a suppressed, risk-accepted or resolved finding", []),
    ("post", "/api/v1/findings/{finding_id}/ai-remediation", "vigil.findings.finding.ai_remediation", "viewer", 200, None,
     obj(["finding_id", "rule_code", "summary", "console_steps", "cli_commands", "terraform", "verification", "generated_by", "cached"],
         finding_id=UUID, rule_code=S(), title=S(), severity=S(), resource=S(), region=S(), summary=S(), console_steps=STRS, cli_commands=STRS,
         terraform=S(), verification=S(), references=STRS, generated_by=S(), cached=B),
     "Resource-specific remediation (console, CLI, Terraform) from the rule's data; cached after the first call", []),
    ("get", "/api/v1/finding-events", "vigil.findings.event.list", "viewer", 200, None, page(FEVENT, capped=True),
     "Workspace feed of finding lifecycle events, newest first",
     PAGE_Q + ["connection_id", "repository_id", "finding_id", "scan_type", "severity", "event_type", "start", "end", "skip"]),
    ("get", "/api/v1/rules/", "vigil.findings.rule.list", "viewer", 200, None, page(MODELS["Rule"]), "Built-in and custom rules",
     PAGE_Q + ["provider", "service", "severity", "category", "framework", "enabled", "custom", "search", "resource_type", "status", "source"]),
    ("post", "/api/v1/rules/", "vigil.findings.rule.create", "admin", 201,
     obj(["title", "severity", "resource_type", "condition"], id=S(pattern="^custom\\."), title=S(), severity=SEVERITY, resource_type=S(),
         category=S(), condition=OBJ, applies_if=OBJ, description=S(), rationale=S(), remediation=REMEDIATION, cwe=S(), references=STRS,
         compliance=COMPLIANCE), "Rule", "Create a custom rule in the scanner's condition language", []),
    ("get", "/api/v1/rules/{rule_id}", "vigil.findings.rule.get", "viewer", 200, None, "Rule", "One rule", []),
    ("patch", "/api/v1/rules/{rule_id}", "vigil.findings.rule.update", "admin", 200, obj(enabled=B, severity=SEVERITY), "Rule",
     "Enable/disable a rule or override its severity for this workspace", []),
    ("get", "/api/v1/compliance/frameworks", "vigil.findings.compliance.frameworks", "viewer", 200, None,
     obj(["items"], items={"type": "array", "items": FRAMEWORK}), "Compliance frameworks", []),
    ("get", "/api/v1/compliance/score", "vigil.findings.compliance.score", "viewer", 200, None, "ComplianceScore",
     "Controls passed / assessed from the latest complete scans, overall, per framework and per connection", ["connection_id", "framework"]),
    ("get", "/api/v1/compliance/score/{framework_id}", "vigil.findings.compliance.framework", "viewer", 200, None, "FrameworkDetail",
     "Each control's status with its rules and failing resources", ["connection_id"]),
    ("get", "/api/v1/compliance/report", "vigil.findings.compliance.report", "viewer", 200, None,
     obj(["score", "frameworks"], score=MODELS["ComplianceScore"], frameworks={"type": "array", "items": MODELS["FrameworkDetail"]}),
     "Compliance report (scores and every framework's controls)", ["framework_id", "framework", "connection_id"]),
    ("get", "/api/v1/reports/", "vigil.findings.report.list", "viewer", 200, None, page(MODELS["Report"]), "Generated reports",
     PAGE_Q + ["report_type"]),
    ("post", "/api/v1/reports/generate", "vigil.findings.report.generate", "analyst", 200,
     obj(type=S(enum=["executive_summary", "compliance", "findings_export"]),
         format=S(enum=["json", "csv", "html", "pdf", "sarif", "ocsf"]), framework_id=S(), title=S(),
         filters=obj(severity=S(), status=S(), connection_id=UUID)), "Report", "Generate a report (stored; download it by id); the type may be given as ?report_type= with no body",
     ["report_type"]),
    ("get", "/api/v1/reports/{report_id}", "vigil.findings.report.get", "viewer", 200, None, "Report", "One report", []),
    ("get", "/api/v1/reports/{report_id}/download", "vigil.findings.report.download", "viewer", 200, None,
     {"type": "string", "format": "binary", "description": "the file (JSON, CSV, HTML, PDF, SARIF or OCSF); on the bus: "
      "{content_type, filename, content_base64}"}, "Download a report", []),
    ("post", "/api/v1/contact/", "vigil.notifier.contact.submit", "public", 200,
     obj(["name", "email", "message"], name=S(maxLength=200), email=S(format="email"), message=S(minLength=10, maxLength=5000),
         subject=S(maxLength=200), company=S(maxLength=200), captcha_token=S()),
     obj(["id", "status", "message"], id=UUID, status=S(), message=S()), "Contact form (rate-limited; captcha when configured)", []),
    ("get", "/api/v1/webhooks/endpoints", "vigil.notifier.webhook.list", "admin", 200, None, page(MODELS["WebhookEndpoint"]), "List webhook endpoints", PAGE_Q),
    ("post", "/api/v1/webhooks/endpoints", "vigil.notifier.webhook.create", "admin", 201,
     obj(["url", "events"], url=S(format="uri"), events={"type": "array", "items": S()}, description=S(), min_severity=S(),
         connection_ids={"type": "array", "items": UUID}, is_active=B, secret=S(pattern="^whsec_"), finding_delivery=FINDING_DELIVERY),
     "WebhookEndpoint",
     "Create a webhook endpoint (the signing secret is shown once)", []),
    ("delete", "/api/v1/webhooks/endpoints/{endpoint_id}", "vigil.notifier.webhook.delete", "admin", 204, None, "Empty", "Delete a webhook endpoint", []),
    ("post", "/api/v1/webhooks/endpoints/{endpoint_id}/test", "vigil.notifier.webhook.test", "admin", 200, None, "Delivery",
     "Send a signed test delivery now and return its result", []),
    ("post", "/api/v1/webhooks/endpoints/{endpoint_id}/rotate-secret", "vigil.notifier.webhook.rotate_secret", "admin", 200,
     obj(overlap_seconds=I(minimum=0, maximum=604800)), obj(["secret", "previous_secret_expires_at"], secret=S(), previous_secret_expires_at=DT),
     "Rotate the signing secret; both secrets sign during the overlap", []),
    ("get", "/api/v1/webhooks/endpoints/{endpoint_id}/deliveries", "vigil.notifier.delivery.list", "admin", 200, None, page(MODELS["Delivery"]),
     "Delivery log of an endpoint", PAGE_Q),
    ("post", "/api/v1/webhooks/deliveries/{delivery_id}/redeliver", "vigil.notifier.delivery.redeliver", "admin", 200, None, "Delivery",
     "Queue a delivery again", []),
    ("get", "/api/v1/notifications/channels", "vigil.notifier.channel.list", "admin", 200, None, page(MODELS["Channel"]),
     "Notification channels", PAGE_Q),
    ("post", "/api/v1/notifications/channels", "vigil.notifier.channel.create", "admin", 201,
     obj(["name", "method", "config"], name=S(), method=S(enum=["email", "slack", "webhook"]),
         config={"type": "object", "description": "email: {to: [..]}; slack: {webhook_url}; webhook: {url}"},
         enabled=B, events={"type": "array", "items": S()}, min_severity=S()), "Channel", "Create a notification channel", []),
    ("patch", "/api/v1/notifications/channels/{channel_id}", "vigil.notifier.channel.update", "admin", 200,
     obj(name=S(), config={"type": "object"}, enabled=B, events={"type": "array", "items": S()}, min_severity=S()), "Channel",
     "Update a notification channel", []),
    ("delete", "/api/v1/notifications/channels/{channel_id}", "vigil.notifier.channel.delete", "admin", 204, None, "Empty",
     "Delete a notification channel", []),
    ("post", "/api/v1/notifications/channels/test", "vigil.notifier.channel.test", "admin", 200, obj(["channel_id"], channel_id=UUID),
     obj(["ok", "detail"], ok=B, detail=S()), "Send a test message through a saved channel", []),
    ("get", "/api/v1/notifications/policy", "vigil.notifier.policy.get", "member", 200, None, "NotificationPolicy",
     "Notification policy (digest per scan or every event)", []),
    ("patch", "/api/v1/notifications/policy", "vigil.notifier.policy.update", "admin", 200,
     obj(delivery=S(enum=["digest", "every_event"]), notification_trigger_mode=S(enum=["scan_complete", "waste_only"])),
     "NotificationPolicy", "Update the notification policy", []),
    ("get", "/api/v1/events/types", "vigil.notifier.event_type.list", "member", 200, None,
     obj(["items"], items={"type": "array", "items": obj(["type", "description"], type=S(), description=S())}), "Event types for webhooks", []),
    ("get", "/api/v1/webhooks/audit-logs", "vigil.notifier.audit.list", "admin", 200, None, page(MODELS["AuditRecord"]),
     "Append-only audit log", PAGE_Q + ["action", "resource_type", "actor", "since", "until"]),
]

API_CALL = obj(["service", "operation", "region", "kind"], service=S(), operation=S(), region=S(), kind=S(enum=["query", "json", "rest"]),
               version=S(), params={"type": "array", "items": {"type": "array", "items": S()}}, target=S(), method=S(), path=S(),
               query={"type": "array", "items": {"type": "array", "items": S()}}, headers=OBJ, body=S(), capture=OBJ,
               ok_errors={"type": "array", "items": S()})
ACTION_INFO = obj(["name", "title", "service", "resource_type", "permissions", "rollback_permissions", "parameters", "rules"], name=S(), title=S(),
                  service=S(), resource_type=S(), permissions={"type": "array", "items": S()}, rollback_permissions={"type": "array", "items": S()},
                  parameters={"type": "array", "items": dict(obj(["name", "type", "description"], name=S(), type=S(), description=S(),
                                                                  allowed={"type": "array", "items": S()}))},
                  rollback_note=S(), rules={"type": "array", "items": S()})
ACTION_INFO["properties"]["parameters"]["items"]["properties"]["required"] = B
FIX_PLAN = obj(["action", "resource_id", "region", "current_state", "calls", "rollback_calls"], action=ACTION_INFO, resource_id=S(), region=S(),
               current_state=OBJ, calls={"type": "array", "items": API_CALL}, rollback_calls={"type": "array", "items": API_CALL})
VERIFICATION = obj(["status", "rule_code", "resource_id", "checked_at"], status=S(enum=["PASS", "FAIL", "GONE"]), rule_code=S(), resource_id=S(),
                   checked_at=DT, evidence=OBJ)
RSTATUS = S(enum=["pending_approval", "approved", "executing", "applied", "failed", "rolling_back", "rolled_back", "rollback_failed",
                  "rejected", "expired", "dry_run"])
MODELS["RemediationAction"] = obj(["id", "finding_id", "connection_id", "rule_code", "action", "title", "severity", "resource_id", "status",
                                   "dry_run", "plan", "requested_by", "attempts", "created_at", "updated_at"],
                                  id=UUID, finding_id=UUID, connection_id=UUID, rule_code=S(), action=S(), title=S(), severity=SEVS, resource_id=S(),
                                  resource_type=S(), resource_name=S(), region=S(), status=RSTATUS, dry_run=B, parameters=OBJ, plan=FIX_PLAN,
                                  requested_by=S(), approved_by=S(), approved_at=DT, decided_by=S(), decision_reason=S(), before_state=OBJ,
                                  after_state=OBJ, executed_calls={"type": "array", "items": API_CALL}, verification=VERIFICATION,
                                  rollback_verification=VERIFICATION, rollback_resource_id=S(), error=S(), attempts=I(), expires_at=DT,
                                  created_at=DT, updated_at=DT, applied_at=DT, rolled_back_at=DT,
                                  history={"type": "array", "items": obj(["at", "to_status"], at=DT, from_status=S(), to_status=RSTATUS, actor=S(), note=S())})
MODELS["ApprovalItem"] = obj(["id", "kind", "title", "action", "severity", "resource_id", "requested_by", "requested_at", "can_approve"],
                             id=UUID, kind=S(enum=["remediation"]), title=S(), action=S(), severity=SEVS, resource_id=S(), resource_name=S(),
                             connection_id=UUID, finding_id=UUID, requested_by=S(), requested_at=DT, expires_at=DT, can_approve=B, plan=FIX_PLAN)
MODELS["RemediationCredentials"] = obj(["connection_id", "credentials", "verified", "auto_fix", "message"], connection_id=UUID,
                                       credentials={"type": "object", "additionalProperties": S()}, account_id=S(), arn=S(), verified=B,
                                       auto_fix=B, created_at=DT, message=S())
REMEDIATION_ROUTES = [
    ("post", "/api/v1/connections/{connection_id}/remediation-credentials", "vigil.remediation.credentials.set", "admin", 200,
     obj(access_key_id=S(), secret_access_key=S(), session_token=S(), role_arn=S(), external_id=S(), credentials=AWS_CREDS),
     "RemediationCredentials", "Store write credentials for fixes (tested with STS, sealed to the remediation key, never shown again)", []),
    ("delete", "/api/v1/connections/{connection_id}/remediation-credentials", "vigil.remediation.credentials.delete", "admin", 200, None,
     "RemediationCredentials", "Remove remediation credentials: automatic fixes stop for the connection", []),
    ("post", "/api/v1/remediations/request", "vigil.remediation.action.request", "analyst", 201,
     obj(["finding_id"], finding_id=UUID, action=S(), dry_run=B, parameters=OBJ), "RemediationAction",
     "Plan a fix for a finding; the policy approves it or it waits for approval (dry run: plan only)", []),
    ("get", "/api/v1/remediations/", "vigil.remediation.action.list", "viewer", 200, None, page(MODELS["RemediationAction"]),
     "Every remediation action of the workspace", PAGE_Q + ["status", "finding_id", "connection_id"]),
    ("get", "/api/v1/remediations/pending", "vigil.remediation.action.pending", "viewer", 200, None, page(MODELS["RemediationAction"]),
     "Actions waiting for approval", PAGE_Q),
    ("get", "/api/v1/remediations/actions", "vigil.remediation.actions.catalog", "viewer", 200, None,
     obj(["items"], items={"type": "array", "items": ACTION_INFO}), "The fix actions: schema, permissions, rules they fix", []),
    ("get", "/api/v1/remediations/{action_id}", "vigil.remediation.action.get", "viewer", 200, None, "RemediationAction",
     "One action with its plan, states, verification and history", []),
    ("post", "/api/v1/remediations/{action_id}/approve", "vigil.remediation.action.approve", "analyst", 200, obj(reason=S(maxLength=1000)),
     "RemediationAction", "Approve (roles from the policy; not your own request unless the policy allows)", []),
    ("post", "/api/v1/remediations/{action_id}/reject", "vigil.remediation.action.reject", "analyst", 200, obj(["reason"], reason=S(minLength=1, maxLength=1000)),
     "RemediationAction", "Reject with a reason", []),
    ("post", "/api/v1/remediations/{action_id}/rollback", "vigil.remediation.action.rollback", "analyst", 202, None, "RemediationAction",
     "Restore the recorded before-state (then verified)", []),
    ("get", "/api/v1/approvals/", "vigil.remediation.approvals.list", "viewer", 200, None, page(MODELS["ApprovalItem"]),
     "Everything waiting for approval in the workspace", PAGE_Q),
]

ROUTES += REMEDIATION_ROUTES

LIMITS = obj(["connections", "scans_per_month", "remediations_per_month", "seats", "api_requests_per_minute", "findings_retention_days"],
             connections=NULL(I()), scans_per_month=NULL(I()), remediations_per_month=NULL(I()), seats=NULL(I()),
             api_requests_per_minute=NULL(I()), findings_retention_days=NULL(I()))
QUOTA_BALANCE = obj(["name", "limit", "used", "reserved", "remaining"], name=S(), limit=NULL(I()), used=I(), reserved=I(), remaining=NULL(I()),
                    resets_at=NULL(DT))
SUB_STATUS = S(enum=["trialing", "active", "past_due", "canceled", "incomplete"])
MODELS["Plan"] = obj(["id", "name", "rank", "prices", "limits", "features"], id=S(), name=S(), rank=I(), description=S(),
                     prices={"type": "array", "items": obj(["interval", "amount_cents", "currency"], interval=S(enum=["month", "year"]),
                                                           amount_cents=I(), currency=S())},
                     limits=LIMITS, features={"type": "array", "items": S()})
MODELS["Subscription"] = obj(["plan", "status", "current_period_start", "current_period_end", "cancel_at_period_end", "usage", "limits"],
                             plan=S(), plan_name=S(), interval=S(), status=SUB_STATUS, current_period_start=DT, current_period_end=DT,
                             cancel_at_period_end=B, trial_end=NULL(DT), scheduled_plan=NULL(S()), provider=S(enum=["manual", "stripe"]),
                             restricted=B, limits=LIMITS, features={"type": "array", "items": S()},
                             usage={"type": "object", "additionalProperties": QUOTA_BALANCE})
BILLING_ROUTES = [
    ("get", "/api/v1/billing/plans", "vigil.billing.plan.list", "public", 200, None,
     obj(["items", "currency"], items={"type": "array", "items": MODELS["Plan"]}, currency=S()), "The plan catalogue with prices and limits (no auth)", []),
    ("get", "/api/v1/billing/subscription", "vigil.billing.subscription.get", "member", 200, None, "Subscription",
     "The workspace's subscription, effective limits and this period's usage", []),
    ("post", "/api/v1/billing/checkout", "vigil.billing.subscription.checkout", "member", 200,
     obj(["plan"], plan=S(enum=["free", "pro", "business", "enterprise"]), interval=S(enum=["month", "year"])),
     obj(["provider", "status", "url", "plan"], provider=S(), status=S(enum=["redirect", "applied", "scheduled"]), url=S(), plan=S(),
         effective_at=NULL(DT), session_id=NULL(S())),
     "Change plan (owner, admin, billing): Stripe Checkout, or at once (upgrade) / at period end (downgrade)", []),
    ("post", "/api/v1/billing/portal", "vigil.billing.subscription.portal", "member", 200, None, obj(["provider", "url"], provider=S(), url=S()),
     "The payment provider's billing portal (owner, admin, billing)", []),
    ("post", "/api/v1/billing/cancel", "vigil.billing.subscription.cancel", "member", 200, None, "Subscription", "Cancel at period end", []),
    ("post", "/api/v1/billing/resume", "vigil.billing.subscription.resume", "member", 200, None, "Subscription", "Undo a pending cancellation", []),
    ("post", "/api/v1/billing/webhooks/stripe", "vigil.billing.webhook.stripe", "public", 200, OBJ,
     obj(["received", "duplicate", "type"], received=B, duplicate=B, type=S()),
     "Stripe webhooks (Stripe-Signature verified, 300 s tolerance, each event id processed once)", []),
    ("get", "/api/v1/quotas/balance", "vigil.billing.quota.balance", "member", 200, None,
     obj(["plan", "status", "period_start", "period_end", "restricted", "quotas"], plan=S(), status=SUB_STATUS, period_start=DT, period_end=DT,
         restricted=B, quotas={"type": "object", "additionalProperties": QUOTA_BALANCE}), "This period's quota balances", []),
]
ROUTES += BILLING_ROUTES

INTERNAL = [
    ("vigil.identity.principal.resolve", obj(["kind"], kind=S(enum=["jwt", "api_key"]), user_id=UUID, session_tenant_id=UUID,
                                              api_key_hash=S(), tenant_slug=S()), MODELS["Principal"],
     "Gateway → identity: who is this verified token or API-key hash, in which workspace"),
    ("vigil.identity.keys.get", obj(), obj(["keys"], keys={"type": "array", "items": obj(["kid", "alg", "public_key"], kid=S(), alg=S(), public_key=S())}),
     "Identity's Ed25519 token-verification keys"),
    ("vigil.remediation.policy.get", obj(), MODELS["RemediationPolicy"], "The workspace's remediation policy"),
    ("vigil.billing.quota.reserve", obj(["quota", "ref"], quota=S(enum=["scans", "remediations"]), ref=S(), amount=I(minimum=1)),
     obj(["reservation_id", "quota", "used", "reserved", "limits", "plan"], reservation_id=UUID, quota=S(), limit=NULL(I()), used=I(), reserved=I(),
         remaining=NULL(I()), limits=LIMITS, plan=S()),
     "Services → billing before accepting work: reserve a unit of a per-period quota (403 quota_exceeded when none is left)"),
    ("vigil.billing.quota.commit", obj(["quota", "ref"], quota=S(), ref=S()), obj(["ref", "status"], ref=S(), status=S()), "Count a reservation"),
    ("vigil.billing.quota.release", obj(["quota", "ref"], quota=S(), ref=S()), obj(["ref", "status"], ref=S(), status=S()), "Give a reservation back"),
    ("vigil.billing.quota.check", obj(["quota", "in_use"], quota=S(enum=["connections", "seats"]), in_use=I(minimum=0), adding=I(minimum=0)),
     obj(["quota", "in_use", "allowed"], quota=S(), limit=NULL(I()), in_use=I(), allowed=B),
     "Services → billing: may `adding` more exist next to `in_use`? (also records the count)"),
    ("vigil.billing.plan.limits", obj(), obj(["plan", "status", "restricted", "limits", "features"], plan=S(), status=S(), restricted=B, limits=LIMITS,
                                             features={"type": "array", "items": S()}), "The workspace's effective plan (gateway: API rate)"),
    ("vigil.findings.rules.effective", obj(), obj(["rules"], rules={"type": "array", "items": OBJ}),
     "Scanner → findings at scan start: the workspace's enabled rules (built-in with overrides, and custom), in the rule format of contracts/rules"),
]

ID_ACTOR = dict(actor=S())
FINDING_EVENT = obj(["finding_id", "event_id", "connection_id", "rule_id", "severity", "status", "resource_id", "title"], finding_id=UUID, event_id=UUID,
        connection_id=UUID, rule_id=S(), severity=SEVERITY, status=FSTATUS, resource_id=S(), title=S(), previous_status=S(), actor=S(),
        reason=S(), scan_id=UUID)
FINDING_TYPES = ["finding.opened", "finding.resolved", "finding.reopened", "finding.suppressed", "finding.risk_accepted"]
FINDING_ITEM = obj(["id", "type", "occurred_at", "tenant_id", "data"], id=UUID, type=S(enum=FINDING_TYPES), occurred_at=DT, tenant_id=UUID,
                   data=FINDING_EVENT)
REMEDIATION_EVENT = obj(["action_id", "finding_id", "connection_id", "rule_code", "action", "resource_id", "severity", "status"],
                        action_id=UUID, finding_id=UUID, connection_id=UUID, rule_code=S(), action=S(), resource_id=S(), severity=SEVS, status=S(),
                        previous_status=S(), actor=S(), reason=S(), verified=S(enum=["true", "false"]), verification=S(), restored_resource_id=S())
EVENTS = {
    "vigil.events.user.signed_up": obj(["user_id", "workspace_id"], user_id=UUID, workspace_id=UUID),
    "vigil.events.user.password_changed": obj(["user_id"], user_id=UUID),
    "vigil.events.user.password_reset": obj(["user_id"], user_id=UUID),
    "vigil.events.workspace.created": obj(["workspace_id", "slug"], workspace_id=UUID, slug=S(), parent_id=S()),
    "vigil.events.workspace.updated": obj(["workspace_id"], workspace_id=UUID, **ID_ACTOR),
    "vigil.events.membership.role_changed": obj(["membership_id", "user_id", "from", "to"], membership_id=UUID, user_id=UUID,
                                                **{"from": ROLE, "to": ROLE}, **ID_ACTOR),
    "vigil.events.membership.removed": obj(["membership_id", "user_id"], membership_id=UUID, user_id=UUID, **ID_ACTOR),
    "vigil.events.invitation.created": obj(["invitation_id", "role"], invitation_id=UUID, role=ROLE, **ID_ACTOR),
    "vigil.events.invitation.accepted": obj(["invitation_id", "user_id", "membership_id", "role"], invitation_id=UUID, user_id=UUID,
                                            membership_id=UUID, role=ROLE),
    "vigil.events.apikey.created": obj(["api_key_id", "prefix"], api_key_id=UUID, prefix=S(), **ID_ACTOR),
    "vigil.events.apikey.revoked": obj(["api_key_id"], api_key_id=UUID, **ID_ACTOR),
    "vigil.events.remediation.policy_updated": obj(["mode"], mode=S(), auto_max_severity=S(), **ID_ACTOR),
    "vigil.events.remediation.credentials_set": obj(["connection_id"], connection_id=UUID, account_id=S(), **ID_ACTOR),
    "vigil.events.remediation.credentials_removed": obj(["connection_id"], connection_id=UUID, **ID_ACTOR),
    "vigil.events.remediation.requested": REMEDIATION_EVENT,
    "vigil.events.remediation.planned": REMEDIATION_EVENT,
    "vigil.events.remediation.approved": REMEDIATION_EVENT,
    "vigil.events.remediation.rejected": REMEDIATION_EVENT,
    "vigil.events.remediation.expired": REMEDIATION_EVENT,
    "vigil.events.remediation.executing": REMEDIATION_EVENT,
    "vigil.events.remediation.applied": REMEDIATION_EVENT,
    "vigil.events.remediation.failed": REMEDIATION_EVENT,
    "vigil.events.remediation.rolling_back": REMEDIATION_EVENT,
    "vigil.events.remediation.rolled_back": REMEDIATION_EVENT,
    "vigil.events.remediation.rollback_failed": REMEDIATION_EVENT,
    "vigil.events.connection.created": obj(["connection_id", "provider"], connection_id=UUID, provider=S(), **ID_ACTOR),
    "vigil.events.connection.updated": obj(["connection_id"], connection_id=UUID, credentials_changed=S(enum=["true", "false"]), **ID_ACTOR),
    "vigil.events.connection.deleted": obj(["connection_id"], connection_id=UUID, **ID_ACTOR),
    "vigil.events.notification.channel_created": obj(["channel_id", "method"], channel_id=UUID, method=S(), **ID_ACTOR),
    "vigil.events.schedule.created": obj(["schedule_id", "connection_id"], schedule_id=UUID, connection_id=UUID, **ID_ACTOR),
    "vigil.events.schedule.updated": obj(["schedule_id"], schedule_id=UUID, **ID_ACTOR),
    "vigil.events.schedule.deleted": obj(["schedule_id"], schedule_id=UUID, **ID_ACTOR),
    "vigil.events.schedule.paused": obj(["schedule_id"], schedule_id=UUID, **ID_ACTOR),
    "vigil.events.schedule.resumed": obj(["schedule_id"], schedule_id=UUID, **ID_ACTOR),
    "vigil.events.schedule.run_started": obj(["schedule_id", "run_id", "scan_id", "trigger"], schedule_id=UUID, run_id=UUID, scan_id=UUID,
                                             trigger=S(), planned_at=S()),
    "vigil.events.schedule.run_skipped": obj(["schedule_id", "run_id", "outcome", "reason"], schedule_id=UUID, run_id=UUID,
                                             outcome=SCHEDULE_OUTCOME, reason=S(), planned_at=S()),
    "vigil.events.connector.enrollment_created": obj(["enrollment_id"], enrollment_id=UUID, **ID_ACTOR),
    "vigil.events.connector.enrollment_revoked": obj(["enrollment_id"], enrollment_id=UUID, **ID_ACTOR),
    "vigil.events.connector.registered": obj(["connector_id", "enrollment_id", "hostname"], connector_id=UUID, enrollment_id=UUID, hostname=S(),
                                             version=S()),
    "vigil.events.connector.revoked": obj(["connector_id"], connector_id=UUID, cancelled_jobs=S(), **ID_ACTOR),
    "vigil.events.scan_policy.updated": obj([], **ID_ACTOR),
    "vigil.events.proxy.created": obj(["proxy_id"], proxy_id=UUID, **ID_ACTOR),
    "vigil.events.repository.fix_requested": obj(["fix_id", "repository_id"], fix_id=UUID, repository_id=UUID, findings=S(), **ID_ACTOR),
    "vigil.events.repository.fix_completed": obj(["fix_id", "repository_id", "status"], fix_id=UUID, repository_id=UUID,
                                                 status=S(enum=["completed", "failed"]), files=S()),
    "vigil.events.repository.fix_canceled": obj(["fix_id", "repository_id"], fix_id=UUID, repository_id=UUID, **ID_ACTOR),
    "vigil.events.repository.fix_diff_revealed": obj(["fix_id", "repository_id"], fix_id=UUID, repository_id=UUID, **ID_ACTOR),
    "vigil.events.repository.pull_request_created": obj(["fix_id", "repository_id", "branch_name"], fix_id=UUID, repository_id=UUID,
                                                        branch_name=S(), url=S(), **ID_ACTOR),
    "vigil.events.findings.scan_ingested": dict(**obj(["scan_id", "connection_id", "status"], scan_id=UUID, connection_id=UUID, status=S()),
                                                description="The findings service applied every result of the scan (and resolved what it "
                                                            "no longer saw): reads of findings now reflect it."),
    "vigil.events.domain.created": obj(["domain_id", "domain"], domain_id=UUID, domain=S(), **ID_ACTOR),
    "vigil.events.domain.verified": obj(["domain_id", "domain"], domain_id=UUID, domain=S(), **ID_ACTOR),
    "vigil.events.domain.deleted": obj(["domain_id"], domain_id=UUID, **ID_ACTOR),
    "vigil.events.proxy.updated": obj(["proxy_id"], proxy_id=UUID, **ID_ACTOR),
    "vigil.events.proxy.deleted": obj(["proxy_id"], proxy_id=UUID, **ID_ACTOR),
    "vigil.events.scan.deleted": obj(["scan_id"], scan_id=UUID, **ID_ACTOR),
    "vigil.events.scan.queued": obj(["scan_id", "connection_id"], scan_id=UUID, connection_id=UUID, **ID_ACTOR),
    "vigil.events.scan.started": obj(["scan_id", "connection_id"], scan_id=UUID, connection_id=UUID),
    "vigil.events.scan.completed": dict(**obj(["scan_id", "connection_id", "status", "complete", "findings_count", "parts"], scan_id=UUID,
                                       connection_id=UUID, status=S(enum=["completed", "failed", "canceled"]), complete=B,
                                       findings_count=COUNTS, estimated_monthly_savings={"type": "number"}, resources_scanned=I(),
                                       checks_evaluated=I(), parts={"type": "array", "items": PART}, error=NULL(S())),
                                       description="Terminal event of every scan. `complete` is true when every part completed; "
                                                   "a part marked completed evaluated all its rules on all its resources."),
    "vigil.events.finding.batch": dict(
        **obj(["count", "findings"], count=I(minimum=1), scan_id=UUID, actor=S(),
              findings={"type": "array", "minItems": 1, "items": FINDING_ITEM}),
        description="Finding lifecycle events, many to a message: every event of one ingest batch (or of one API change, "
                    "resolution or expiry sweep, cut every 512 KB) in `findings[]`, oldest first, as AWS Security Hub hands "
                    "findings to EventBridge in `detail.findings[]`. Each item is the event a subscriber received alone on "
                    "`vigil.events.finding.<opened|resolved|reopened|suppressed|risk_accepted>` before this version (same id, "
                    "type, occurred_at, tenant_id and data): migrate by subscribing to `vigil.events.finding.batch` and handling "
                    "each item as before. `scan_id` is set when every item came from one scan; `actor` when a person or a "
                    "suppression rule made a change."),
    "vigil.events.rule.created": obj(["rule_id"], rule_id=S(), **ID_ACTOR),
    "vigil.events.rule.updated": obj(["rule_id"], rule_id=S(), enabled=S(), severity=S(), **ID_ACTOR),
    "vigil.events.report.generated": obj(["report_id", "type", "format"], report_id=UUID, type=S(), format=S(), **ID_ACTOR),
    "vigil.events.billing.subscription_updated": obj(["plan", "status", "change"], plan=S(), status=S(), change=S(), previous_plan=S(),
                                                     previous_status=S(), cancel_at_period_end=S(enum=["true", "false"]), scheduled_plan=S(), **ID_ACTOR),
    "vigil.events.billing.usage_recorded": obj(["quota", "ref", "amount"], quota=S(), ref=S(), amount=S()),
    "vigil.events.webhook.endpoint_created": obj(["endpoint_id"], endpoint_id=UUID, **ID_ACTOR),
    "vigil.events.webhook.endpoint_deleted": obj(["endpoint_id"], endpoint_id=UUID, **ID_ACTOR),
    "vigil.events.webhook.endpoint_disabled": obj(["endpoint_id", "reason"], endpoint_id=UUID, reason=S()),
}
JOBS = {
    "vigil.jobs.findings.results": obj(["scan_id", "connection_id", "provider", "account_id", "service", "region", "batch", "batches", "results"],
                                     scan_id=UUID, connection_id=UUID, provider=S(), account_id=S(), service=S(), region=S(),
                                     batch=I(minimum=1), batches=I(minimum=1), results={"type": "array", "items": SCAN_RESULT}),
    "vigil.jobs.remediation.execute": obj(["action_id", "tenant_id", "op"], action_id=UUID, tenant_id=UUID, op=S(enum=["execute"])),
    "vigil.jobs.remediation.rollback": obj(["action_id", "tenant_id", "op"], action_id=UUID, tenant_id=UUID, op=S(enum=["rollback"])),
    "vigil.jobs.repository.fix": obj(["fix_id", "tenant_id"], fix_id=UUID, tenant_id=UUID),
    "vigil.jobs.scan.aws": obj(["scan_id", "tenant_id", "connection_id"], scan_id=UUID, tenant_id=UUID, connection_id=UUID),
    "vigil.jobs.email.send": obj(["to", "template", "subject", "text", "values"], to=S(format="email"),
                                 template=S(enum=["verify_email", "reset_password", "invitation", "contact", "notification"]), subject=S(), text=S(),
                                 values={"type": "object", "additionalProperties": S()}),
}
BROADCASTS = {
    "vigil.identity.principal.invalidated": (obj(api_key_id=UUID, user_id=UUID, tenant_id=UUID),
                                             "Core NATS broadcast (no queue group): drop cached principals matching any field"),
}
ENVELOPE = obj(["id", "type", "occurred_at", "data"], id=UUID, type=S(), occurred_at=DT, tenant_id=NULL(UUID), data={"type": "object"})


def resolve(s):
    return MODELS[s] if isinstance(s, str) else s


def ref(s):
    return {"$ref": f"#/components/schemas/{s}"} if isinstance(s, str) else s


def write_json(name, schema, title):
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **schema}
    with open(os.path.join(OUT, "schemas", name), "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")


RULE_FRAMEWORKS = {"cis_aws_3_0", "cis_debian_12", "pci_dss_4_0", "soc2", "iso27001_2022", "nist_800_53"}
RULE_REQUIRED = ["id", "title", "severity", "service", "resource_type", "category", "fail_if", "description", "rationale",
                 "remediation", "compliance"]
OPS = {"eq", "ne", "in", "not_in", "contains", "not_contains", "contains_any", "exists", "not_exists", "gt", "gte", "lt", "lte",
       "regex", "empty", "not_empty", "any"}


def check_condition(c, where):
    assert isinstance(c, dict) and len(c) >= 1, f"{where}: condition must be an object"
    if "all" in c or "any" in c:
        for x in c.get("all", c.get("any")):
            check_condition(x, where)
    elif "not" in c:
        check_condition(c["not"], where)
    else:
        assert "path" in c and c.get("op") in OPS, f"{where}: bad comparison {c}"
        if c["op"] == "any":
            check_condition(c["where"], where)


def build_rules():
    """Loads contracts/rules/<provider>/*.yaml, validates them and returns the built-in rule list."""
    rules, seen = [], set()
    base = os.path.join(OUT, "rules")
    for provider in sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))):
        for name in sorted(os.listdir(os.path.join(base, provider))):
            if not name.endswith(".yaml"):
                continue
            for r in yaml.safe_load(open(os.path.join(base, provider, name))):
                where = f"{provider}/{name}:{r.get('id')}"
                for k in RULE_REQUIRED:
                    assert k in r, f"{where}: missing {k}"
                assert r["id"] not in seen, f"{where}: duplicate id"
                seen.add(r["id"])
                assert r["severity"] in ("critical", "high", "medium", "low", "info"), where
                assert set(r["compliance"]) <= RULE_FRAMEWORKS, f"{where}: unknown framework"
                assert "console" in r["remediation"], f"{where}: remediation.console"
                assert "examples" in r and "fail" in r["examples"] and "pass" in r["examples"], f"{where}: examples"
                check_condition(r["fail_if"], where)
                if "applies_if" in r:
                    check_condition(r["applies_if"], where)
                rules.append({"provider": provider, **r})
    return rules


def write_web_assets():
    """Embeds web/ (the dashboard: HTML, JS, CSS; no build step) into the gateway binary."""
    types = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
             ".svg": "image/svg+xml"}
    web = os.path.join(ROOT, "web")
    lines = ["// swift-format-ignore-file", "// Generated by scripts/gen-contracts.py from web/ — edit the files there.",
             "enum WebAssets {", "    static let files: [String: (type: String, text: String)] = ["]
    for name in sorted(os.listdir(web)):
        ext = os.path.splitext(name)[1]
        if ext not in types:
            continue
        text = open(os.path.join(web, name)).read()
        assert '"""#' not in text
        lines.append(f'        "{name}": ("{types[ext]}", #"""\n{text}\n"""#),')
    lines += ["    ]", "}", ""]
    with open(os.path.join(ROOT, "libs", "Services", "GatewayService", "WebAssets.generated.swift"), "w") as f:
        f.write("\n".join(lines))


def write_semgrep_rules():
    """Embeds contracts/semgrep/ (the rule set the semgrep_scan runs; nothing is fetched from a registry) into the binary."""
    folder = os.path.join(OUT, "semgrep")
    lines = ["// swift-format-ignore-file", "// Generated by scripts/gen-contracts.py from contracts/semgrep/ — edit the files there.",
             "enum SemgrepRules {", "    static let files: [String: String] = ["]
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".yaml"):
            continue
        text = open(os.path.join(folder, name)).read()
        rules = yaml.safe_load(text)["rules"]
        for r in rules:
            assert {"id", "languages", "severity", "message"} <= set(r), f"{name}: {r.get('id')}"
            assert r["severity"] in ("ERROR", "WARNING", "INFO"), f"{name}: {r['id']} severity"
        assert '"""#' not in text
        lines.append(f'        "{name}": #"""\n{text}\n"""#,')
    lines += ["    ]", "}", ""]
    with open(os.path.join(ROOT, "libs", "Providers", "Repo", "SemgrepRules.generated.swift"), "w") as f:
        f.write("\n".join(lines))


def write_rules():
    rules = build_rules()
    with open(os.path.join(OUT, "rules", "builtin.json"), "w") as f:
        json.dump(rules, f, indent=1, sort_keys=True)
        f.write("\n")
    text = json.dumps(rules, sort_keys=True, separators=(",", ":"))
    assert '"""#' not in text
    with open(os.path.join(ROOT, "libs", "Scanning", "ScanEngine", "BuiltinRules.generated.swift"), "w") as f:
        f.write("// swift-format-ignore-file\n// Generated by scripts/gen-contracts.py from contracts/rules/ — edit the YAML there.\n")
        # Lines of 120 characters joined by the raw string's line continuation (backslash-hash at the end of a line):
        # the same JSON text, readable in a diff.
        assert "\\#" not in text
        wrapped = "\\#\n".join(text[i:i + 120] for i in range(0, len(text), 120))
        f.write("enum BuiltinRulesData {\n    static let json = #\"\"\"\n" + wrapped + "\n\"\"\"#\n}\n")


# --- Swift: the subjects, events and the gateway's route table, generated from the tables above -------------------

SWIFT_SERVICES = {"identity": "Identity", "scans": "Scans", "findings": "Findings", "remediation": "Remediation",
                  "billing": "Billing", "notifier": "Notifier"}
# Routes whose service gets the exact request bytes and their signature headers instead of parsed JSON.
RAW_BODY_SUBJECTS = {"vigil.billing.webhook.stripe", "vigil.scans.connector_api.heartbeat", "vigil.scans.connector_api.poll",
                     "vigil.scans.connector_api.result"}
SWIFT_STATUS = {200: "ok", 201: "created", 202: "accepted", 204: "noContent"}
SWIFT_HEADER = "// swift-format-ignore-file\n// Generated by scripts/gen-contracts.py from its tables — edit them there and run `make contracts`.\n"
SUBJECTS_IMPORTS = "import VigilCore\n"


def camel(words):
    parts = [w for w in words.replace(".", "_").split("_") if w]
    name = parts[0] + "".join(w[:1].upper() + w[1:] for w in parts[1:])
    return name.replace("Aws", "AWS")


def wrap(head, args, indent, tail="),"):
    """`head(arg, arg, ...)` on one line when it fits in 150 columns, else one continuation line per 130 columns."""
    one = f"{indent}{head}{', '.join(args)}{tail}"
    if len(one) <= 150:
        return [one]
    lines, cur = [], f"{indent}{head}"
    for i, a in enumerate(args):
        piece = a + (", " if i < len(args) - 1 else "")
        if len(cur) + len(piece) > 140 and cur.strip() != head.strip():
            lines.append(cur.rstrip())
            cur = indent + "    "
        cur += piece
    lines.append(cur + tail)
    return lines


def wrap_comment(text, prefix):
    lines, cur = [], prefix
    for word in text.split():
        if len(cur) + len(word) > 140 and cur != prefix:
            lines.append(cur.rstrip())
            cur = prefix
        cur += word + " "
    return lines + [cur.rstrip()]


def write_swift():
    request_subjects = {}
    for method, path, subject, access, status, body, reply, summary, query in ROUTES:
        request_subjects.setdefault(subject, f"{method.upper()} {path} — {summary}")
    for subject, req, reply, summary in INTERNAL:
        request_subjects.setdefault(subject, f"internal — {summary}")
    out = [SWIFT_HEADER, SUBJECTS_IMPORTS, "/// Request subjects (core NATS request/reply, one queue group per service), grouped by the service",
           "/// that answers them. Services and clients name these constants, never a subject string.", "package enum Subjects {"]
    for svc, type_name in SWIFT_SERVICES.items():
        out.append(f"    /// Answered by {svc}.")
        out.append(f"    package enum {type_name} {{")
        for subject in sorted(x for x in request_subjects if x.split(".")[1] == svc):
            out += wrap_comment(request_subjects[subject], "        /// ")
            out.append(f"        package static let {camel(subject.split('.', 2)[2])} = \"{subject}\"")
        out.append("    }")
    out.append("}\n")
    out.append("/// Domain events on the VIGIL_EVENTS stream (`vigil.events.<aggregate>.<event>`), published from outboxes.")
    out.append("package enum Events {")
    for subject in sorted(EVENTS):
        kind = subject.removeprefix("vigil.events.")
        out.append(f"    package static let {camel(kind)} = EventKind(\"{kind}\")")
    out.append("}\n")
    out.append("/// Work on the VIGIL_JOBS work-queue stream (`vigil.jobs.<kind>.<detail>`): taken once, acknowledged when done.")
    out.append("package enum Jobs {")
    for subject in sorted(JOBS):
        out.append(f"    package static let {camel(subject.removeprefix('vigil.jobs.'))} = \"{subject}\"")
    out.append("}\n")
    out.append("/// Core NATS broadcasts: every subscriber gets each message; nothing is persisted.")
    out.append("package enum Broadcasts {")
    for subject, (_, summary) in sorted(BROADCASTS.items()):
        out += wrap_comment(summary, "    /// ")
        out.append(f"    package static let {camel(subject.split('.', 2)[2])} = \"{subject}\"")
    out.append("}\n")
    # Who may call a subject is declared once, on its route: the gateway enforces it on REST calls and
    # every service's responder on bus calls, so handlers do not repeat it.
    access = {}
    for method, path, subject, acc, *_ in ROUTES:
        assert access.setdefault(subject, acc) == acc, f"{subject} has routes with different access"
    out.append("/// The access each REST-routed subject needs, enforced by the gateway and by every service's responder")
    out.append("/// (public and optional subjects need none and are not listed).")
    out.append("package enum RouteAccess {")
    out.append("    package static let bySubject: [String: Access] = [")
    for subject, acc in sorted(access.items()):
        if acc in ("public", "optional"):
            continue
        svc = SWIFT_SERVICES[subject.split(".")[1]]
        value = ".member" if acc == "member" else f".role(.{acc})"
        out.append(f"        Subjects.{svc}.{camel(subject.split('.', 2)[2])}: {value},")
    out.append("    ]")
    out.append("}")
    with open(os.path.join(ROOT, "libs", "Platform", "Contracts", "Subjects.generated.swift"), "w") as f:
        f.write("\n".join(out) + "\n")

    routes = [SWIFT_HEADER, "import Contracts\n", "extension RouteTable {",
              "    /// Every REST route: where it goes on the bus, who may call it, its status and its typed query parameters.",
              "    static let all: [Route] = ["]
    qtypes = {"integer": ".int", "boolean": ".bool"}
    for method, path, subject, access, status, body, reply, summary, query in ROUTES:
        svc = SWIFT_SERVICES[subject.split(".")[1]]
        acc = {"public": ".public", "optional": ".optional", "member": ".member"}.get(access, f".role(.{access})")
        args = [f"method: .{method}", f"path: \"{path}\"", f"subject: Subjects.{svc}.{camel(subject.split('.', 2)[2])}", f"access: {acc}"]
        if status != 200:
            args.append(f"status: .{SWIFT_STATUS[status]}")
        if query:
            q = [f"\"{n}\": {qtypes.get(PAGEREQ['properties'][n].get('type'), '.string')}" for n in query]
            q[0] = "query: [" + q[0]
            q[-1] = q[-1] + "]"
            args += q
        if body is None:
            args.append("takesBody: false")
        if isinstance(reply, dict) and reply.get("format") == "binary":
            args.append("download: true")
        if subject in RAW_BODY_SUBJECTS:
            args.append("rawBody: true")
        if path in EXPORTS:
            args.append("export: true")
        routes += wrap("Route(", args, "        ")
    routes += ["    ]", "}"]
    with open(os.path.join(ROOT, "libs", "Services", "GatewayService", "RouteTable.generated.swift"), "w") as f:
        f.write("\n".join(routes) + "\n")


def main():
    write_rules()
    write_web_assets()
    write_semgrep_rules()
    write_swift()
    os.makedirs(os.path.join(OUT, "schemas"), exist_ok=True)
    for f in os.listdir(os.path.join(OUT, "schemas")):
        os.remove(os.path.join(OUT, "schemas", f))
    paths = {}
    for method, path, subject, access, status, body, reply, summary, query in ROUTES:
        suffix = "_" + path.split("/")[3] if path == "/api/v1/me" or path == "/api/v1/users/invite" else ("_export" if path in EXPORTS else "")
        op = {"operationId": subject.replace("vigil.", "").replace(".", "_") + suffix,
              "summary": summary, "x-vigil-subject": subject, "x-vigil-access": access, "tags": [path.split("/")[3]]}
        params = [{"name": p[1:-1], "in": "path", "required": True, "schema": S()} for p in path.split("/") if p.startswith("{")]
        params += [{"name": q, "in": "query", "required": False, "schema": query_schema(path, q)} for q in query]
        if access not in ("public",):
            params.append({"name": "x-tenant-slug", "in": "header", "required": False, "schema": S()})
        if method != "get":
            params.append({"name": "Idempotency-Key", "in": "header", "required": False, "schema": S(maxLength=255)})
        if params:
            op["parameters"] = params
        if body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if access == "public":
            op["security"] = []
        elif access == "optional":
            op["security"] = [{}, {"bearer": []}, {"apiKey": []}]
        responses = {}
        if status == 204:
            responses["204"] = {"description": "Done"}
        else:
            responses[str(status)] = {"description": "Success", "content": {"application/json": {"schema": ref(reply)}}}
        for code in (["400", "401", "403", "404", "409", "413", "422", "429", "503", "504"]):
            responses[code] = {"$ref": "#/components/responses/Error"}
        op["responses"] = responses
        paths.setdefault(path, {})[method] = op
    add_links(paths)
    openapi = {
        "openapi": "3.1.0",
        "info": {"title": "Vigil API", "version": "0.1.0",
                 "description": "Vigil's REST surface. Every route is one NATS request; errors use one envelope."},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Access token (JWT) or API key"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "responses": {"Error": {"description": "Error envelope", "content": {"application/json": {"schema": ref("Error")}}}},
            "schemas": MODELS,
        },
    }
    with open(os.path.join(OUT, "openapi.yaml"), "w") as f:
        f.write("# Generated by scripts/gen-contracts.py — edit the table there.\n")
        yaml.safe_dump(openapi, f, sort_keys=False, width=120)

    channels, operations = {}, {}
    requests = {}
    for method, path, subject, access, status, body, reply, summary, query in ROUTES:
        if path in EXPORTS:
            continue  # the gateway walks the list's subject: the subject's contract is the list's
        req = body or obj()
        req = {**req, "properties": dict(req.get("properties", {}))}
        req["additionalProperties"] = True
        for p in path.split("/"):
            if p.startswith("{"):
                req["properties"][p[1:-1]] = S()
        for q in query:
            req["properties"][q] = query_schema(path, q)
        requests[subject] = (req, resolve(reply), summary)
    for subject, req, reply, summary in INTERNAL:
        requests[subject] = (req, reply, summary)
    for subject, (req, reply, summary) in sorted(requests.items()):
        write_json(f"{subject}.request.json", req, f"{subject} request")
        write_json(f"{subject}.reply.json", reply, f"{subject} reply")
        key = subject.replace(".", "_")
        channels[key] = {"address": subject, "description": summary,
                         "messages": {"request": {"payload": {"$ref": f"schemas/{subject}.request.json"}},
                                      "reply": {"payload": {"$ref": f"schemas/{subject}.reply.json"}}},
                         "bindings": {"nats": {"queue": "q"}}}
        operations[key] = {"action": "receive", "channel": {"$ref": f"#/channels/{key}"},
                           "reply": {"channel": {"$ref": f"#/channels/{key}"}, "messages": [{"$ref": f"#/channels/{key}/messages/reply"}]},
                           "messages": [{"$ref": f"#/channels/{key}/messages/request"}]}
    write_json("event-envelope.json", ENVELOPE, "Envelope of every event and job message")
    write_json("error.json", MODELS["Error"], "Error body (bus and REST)")
    write_json("principal.json", MODELS["Principal"], "Vigil-Principal header")
    for subject, data in {**EVENTS, **JOBS}.items():
        name = subject.replace("vigil.events.", "event.").replace("vigil.jobs.", "job.")
        write_json(f"{name}.json", data, f"data of {subject}")
        key = subject.replace(".", "_")
        stream = "VIGIL_EVENTS" if subject.startswith("vigil.events.") else "VIGIL_JOBS"
        channels[key] = {"address": subject, "description": f"JetStream {stream}; body is the event envelope, `data` as in schemas/{name}.json",
                         "messages": {"event": {"payload": {"$ref": f"schemas/{name}.json"},
                                                "headers": {"type": "object", "properties": {"Nats-Msg-Id": S()}}}}}
        operations[key] = {"action": "send", "channel": {"$ref": f"#/channels/{key}"},
                           "messages": [{"$ref": f"#/channels/{key}/messages/event"}]}
    for subject, (data, description) in BROADCASTS.items():
        write_json(f"broadcast.{subject}.json", data, f"{subject} message")
        key = subject.replace(".", "_")
        channels[key] = {"address": subject, "description": description,
                         "messages": {"broadcast": {"payload": {"$ref": f"schemas/broadcast.{subject}.json"}}}}
        operations[key] = {"action": "send", "channel": {"$ref": f"#/channels/{key}"},
                           "messages": [{"$ref": f"#/channels/{key}/messages/broadcast"}]}
    asyncapi = {
        "asyncapi": "3.0.0",
        "info": {"title": "Vigil bus", "version": "0.1.0",
                 "description": "Request subjects (queue group q, services protocol errors), events (VIGIL_EVENTS) and jobs (VIGIL_JOBS). "
                                "Headers: Vigil-Tenant-Id, Vigil-Principal, Vigil-Correlation-Id, Idempotency-Key, traceparent."},
        "servers": {"local": {"host": "127.0.0.1:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
    }
    with open(os.path.join(OUT, "asyncapi.yaml"), "w") as f:
        f.write("# Generated by scripts/gen-contracts.py — edit the table there.\n")
        yaml.safe_dump(asyncapi, f, sort_keys=False, width=120)


if __name__ == "__main__":
    main()
