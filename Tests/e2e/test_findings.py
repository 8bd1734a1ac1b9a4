"""Findings: ingestion from the bus (idempotent, resolution only on complete scans), the findings API,
finding events, suppression rules, rules API, compliance scores and reports."""
import csv
import hashlib
import io
import json
import os
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3

from conftest import ROOT, Client, assert_envelope, psql, start_moto, stop_moto
from test_scans import connect, trigger, wait_scan

NOW = lambda: datetime.now(timezone.utc).isoformat()


def fp(tenant, conn, rule, resource):
    return hashlib.sha256(f"{tenant}|{conn}|{rule}|{resource}".encode()).hexdigest()[:40]


def result(tenant, conn, rule, name, status="FAIL", severity="high", service="s3", rtype="aws.s3.bucket", region="us-east-1", savings=None,
           tags=None):
    rid = f"arn:aws:{service}:::{name}"
    r = {"fingerprint": fp(tenant, conn, rule, rid), "rule_id": rule, "status": status, "severity": severity, "title": f"{rule} on {name}",
         "resource_id": rid, "resource_type": rtype, "resource_name": name, "region": region, "service": service, "evidence": {"x": 1}}
    if savings is not None:
        r["estimated_monthly_savings"] = savings
    if tags:
        r["tags"] = tags
    return r


def publish_results(stack, tenant, scan, conn, results, part=("s3", "global"), event_id=None):
    body = {"id": event_id or str(uuid.uuid4()), "type": "scan.results", "occurred_at": NOW(), "tenant_id": tenant,
            "data": {"scan_id": scan, "connection_id": conn, "provider": "aws", "account_id": "123456789012", "service": part[0],
                     "region": part[1], "batch": 1, "batches": 1, "results": results}}
    stack.bus.publish_event("vigil.jobs.findings.results", body)
    return body


def publish_completed(stack, tenant, scan, conn, parts, status="completed", complete=True):
    body = {"id": str(uuid.uuid4()), "type": "scan.completed", "occurred_at": NOW(), "tenant_id": tenant,
            "data": {"scan_id": scan, "connection_id": conn, "status": status, "complete": complete,
                     "findings_count": {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0},
                     "parts": [{"service": s, "region": r, "status": "completed", "resources": n, "checks": n, "failures": 0} for s, r, n in parts]}}
    stack.bus.publish_event("vigil.events.scan.completed", body)


def eventually(fn, timeout=15, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not met: {last}")


def findings(client, **q):
    items, cursor = [], None
    for _ in range(200):
        qs = "&".join([f"{k}={v}" for k, v in {**q, "limit": q.get("limit", 200)}.items()] + ([f"cursor={cursor}"] if cursor else []))
        r = client.get(f"/findings/?{qs}")
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("pagination did not end")


def test_ingestion_is_idempotent_and_only_complete_scans_resolve(stack, signup):
    owner, body, _ = signup("ingest")
    tenant, conn = body["workspace"]["id"], str(uuid.uuid4())
    scan1 = str(uuid.uuid4())
    batch = [result(tenant, conn, "aws.s3.bucket_acl_public_read", n, severity="critical") for n in ("a", "b", "c")]
    batch.append(result(tenant, conn, "aws.s3.bucket_versioning_disabled", "a", status="PASS", severity="low"))
    sent = publish_results(stack, tenant, scan1, conn, batch)
    # The same event again (a redelivery, past JetStream's duplicate window): nothing changes.
    publish_results(stack, tenant, scan1, conn, batch, event_id=sent["id"])
    stack.bus.publish_event("vigil.jobs.findings.results", sent, msg_id=str(uuid.uuid4()))
    eventually(lambda: len(findings(owner, connection_id=conn)) == 3, what="3 findings")
    publish_completed(stack, tenant, scan1, conn, [("s3", "global", 4)])
    time.sleep(1)
    items = findings(owner, connection_id=conn)
    assert len(items) == 3 and {f["status"] for f in items} == {"open"}
    assert all(f["scan_job_id"] == scan1 and f["rule_code"] == "aws.s3.bucket_acl_public_read" for f in items)
    f = items[0]
    assert f["compliance"]["cis_aws_3_0"] == ["2.1.4"] and f["auto_fix"] is True and "console" in f["remediation"]
    ev = owner.get(f"/finding-events?connection_id={conn}").json()
    assert ev["total"] == 3 and {e["event_type"] for e in ev["items"]} == {"opened"}

    # A partial scan where "a" passes resolves nothing; a failed scan neither.
    scan2 = str(uuid.uuid4())
    publish_results(stack, tenant, scan2, conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", "a", status="PASS"),
                                                  result(tenant, conn, "aws.s3.bucket_acl_public_read", "b")])
    publish_completed(stack, tenant, scan2, conn, [("s3", "global", 2)], complete=False)
    scan3 = str(uuid.uuid4())
    publish_completed(stack, tenant, scan3, conn, [], status="failed", complete=False)
    time.sleep(1.5)
    assert {x["status"] for x in findings(owner, connection_id=conn)} == {"open"}

    # A complete scan: "a" passes, "c" is gone (not in the inventory), "b" still fails.
    scan4 = str(uuid.uuid4())
    publish_results(stack, tenant, scan4, conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", "a", status="PASS"),
                                                  result(tenant, conn, "aws.s3.bucket_acl_public_read", "b")])
    publish_completed(stack, tenant, scan4, conn, [("s3", "global", 2)])
    by_name = lambda: {x["resource_name"]: x for x in findings(owner, connection_id=conn)}
    eventually(lambda: by_name()["a"]["status"] == "resolved" and by_name()["c"]["status"] == "resolved", what="a and c resolved")
    assert by_name()["b"]["status"] == "open" and by_name()["a"]["resolved_at"]
    # "a" fails again: reopened, with an event.
    scan5 = str(uuid.uuid4())
    publish_results(stack, tenant, scan5, conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", "a")])
    eventually(lambda: by_name()["a"]["status"] == "open", what="a reopened")
    types = [e["event_type"] for e in owner.get(f"/finding-events?finding_id={by_name()['a']['id']}").json()["items"]]
    assert types == ["reopened", "resolved", "opened"]
    for t in ("opened", "resolved", "reopened"):
        stack.bus.wait_for_finding_event(lambda b: b["data"].get("connection_id") == conn, f"finding.{t}", 5)
    s = owner.get("/findings/summary").json()
    assert s["total"] == 3 and s["by_status"]["open"] == 2 and s["by_status"]["resolved"] == 1 and s["total_resolved_last_30d"] == 1
    assert s["by_connection"][conn] == {"open": 2, "resolved_last_30d": 1} and s["open_by_severity"]["high"] == 2  # later scans saw "high"
    weeks = owner.get("/findings/resolution-trend").json()["weeks"]
    assert len(weeks) == 12 and weeks == sorted(weeks, key=lambda w: w["week_start"])
    assert weeks[-1]["opened"] == 3 and weeks[-1]["resolved"] == 2 and all(w["opened"] == w["resolved"] == 0 for w in weeks[:-1])
    iso = datetime.now(timezone.utc).isocalendar()
    assert weeks[-1]["week"] == f"{iso[0]}-W{iso[1]:02d}"


def test_first_page_total_is_counted_up_to_a_thousand(stack, signup):
    owner, body, _ = signup("bounded")
    tenant, conn, scan = body["workspace"]["id"], str(uuid.uuid4()), str(uuid.uuid4())
    for b in range(2):  # 1,500 findings, 300 of them critical
        publish_results(stack, tenant, scan, conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", f"b{b}-{i}",
                                                           severity="critical" if i % 5 == 0 else "low") for i in range(750)])
    eventually(lambda: owner.get("/findings/summary").json()["total"] == 1500, timeout=60, what="1,500 findings")
    first = owner.get("/findings/?limit=5").json()
    assert first["total"] == 1000 and first["total_capped"] is True and len(first["items"]) == 5
    exact = owner.get("/findings/?limit=5&severity=critical").json()
    assert exact["total"] == 300 and "total_capped" not in exact
    assert "total" not in owner.get(f"/findings/?limit=5&cursor={first['next_cursor']}").json()
    events = owner.get("/finding-events?limit=1").json()
    assert events["total"] == 1000 and events["total_capped"] is True
    assert owner.get("/finding-events?limit=1&severity=critical").json()["total"] == 300


def test_pages_of_large_findings_fit_one_bus_message(stack, signup):
    """A page is cut to what one bus message carries (NATS's 1 MB by default): 600 findings with 2 KB of
    evidence each, asked for 500 at a time, come back in shorter pages that follow on by next_cursor, each
    finding exactly once. (A page that did not fit was never answered: 504 after the gateway's timeout.)"""
    owner, body, _ = signup("largepages")
    tenant, conn, scan = body["workspace"]["id"], str(uuid.uuid4()), str(uuid.uuid4())
    publish_results(stack, tenant, scan, conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", f"big-{i}") for i in range(600)])
    eventually(lambda: owner.get("/findings/summary").json()["total"] == 600, timeout=60, what="600 findings")
    psql(stack, f"UPDATE findings.findings SET evidence = jsonb_build_object('detail', repeat('x', 2000)) WHERE tenant_id = '{tenant}'")
    seen, sizes, cursor = [], [], None
    for _ in range(10):
        r = owner.get("/findings/?limit=500" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.text
        assert len(r.content) < 1024 * 1024
        page = r.json()
        assert all(len(f["evidence"]["detail"]) == 2000 for f in page["items"])
        sizes.append(len(page["items"]))
        seen += [f["id"] for f in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert len(seen) == 600 == len(set(seen)), sizes
    assert sizes[0] < 500 and len(sizes) >= 2, sizes
    # The export walks the same pages in the gateway: one JSON array, one finding a line, the list's order.
    r = owner.get("/findings/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text[:300]
    lines = r.text.split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""] and len(lines) == 600 + 3
    assert [f["id"] for f in r.json()] == seen
    assert [f["id"] for f in owner.get("/findings/export?limit=501").json()] == seen[:501]


def test_filters_sorting_and_cursor_stability(stack, signup):
    owner, body, _ = signup("filters")
    tenant, conn, scan = body["workspace"]["id"], str(uuid.uuid4()), str(uuid.uuid4())
    sev = ["critical", "high", "medium", "low", "info"]
    batch = [result(tenant, conn, "aws.s3.bucket_acl_public_read" if i % 2 else "aws.sqs.queue_unencrypted", f"res-{i:02d}",
                    severity=sev[i % 5], savings=1.5 if i % 5 == 4 else None) for i in range(60)]
    publish_results(stack, tenant, scan, conn, batch)
    eventually(lambda: owner.get("/findings/?limit=1").json()["total"] == 60, what="60 findings")
    assert owner.get("/findings/?severity=critical,high").json()["total"] == 24
    assert owner.get("/findings/?rule_code=aws.sqs.queue_unencrypted").json()["total"] == 30
    assert owner.get("/findings/?search=res-0").json()["total"] == 10
    assert owner.get("/findings/?status=resolved").json()["total"] == 0
    assert owner.get(f"/findings/?connection_id={conn}&scan_job_id={scan}").json()["total"] == 60
    # auto_fix_only: the S3 ACL rule has a fix action, the SQS encryption rule does not.
    assert owner.get("/findings/?auto_fix_only=true").json()["total"] == 30
    ranked = findings(owner, sort_by="severity", limit=7)
    ranks = [sev.index(f["severity"]) for f in ranked]
    assert ranks == sorted(ranks) and len({f["id"] for f in ranked}) == 60
    # Walk the default order with a small page while new findings keep arriving: no duplicates, nothing skipped.
    seen, cursor, extra = [], None, 0
    for _ in range(30):
        r = owner.get("/findings/?limit=7" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [f["id"] for f in r["items"]]
        publish_results(stack, tenant, str(uuid.uuid4()), conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", f"new-{extra}")])
        extra += 1
        cursor = r["next_cursor"]
        if not cursor:
            break
    original = {f["id"] for f in ranked}
    assert len(seen) == len(set(seen)) and original <= set(seen)
    assert owner.get("/findings/?offset=55&limit=5").status_code == 200
    for q, path in [("severity=urgent", "query.severity"), ("status=gone", "query.status"), ("sort_by=color", "query.sort_by"),
                    ("connection_id=nope", "query.connection_id"), ("limit=0", "query.limit"), ("cursor=!!!", "query.cursor"),
                    ("auto_fix_only=maybe", "query.auto_fix_only")]:
        b = assert_envelope(owner.get(f"/findings/?{q}"), 422)
        assert path in {i["path"] for i in b["issues"]}, (q, b)
    s = owner.get("/findings/summary").json()
    assert s["estimated_monthly_savings"] == 18.0 and s["open_by_severity"]["info"] == 12
    # The export takes the list's filters and order; its limit caps the count; bad input is the list's 4xx.
    exported = owner.get("/findings/export?severity=critical,high&sort_by=severity").json()
    assert len(exported) == owner.get("/findings/?severity=critical,high").json()["total"] > 24
    assert [f["severity"] for f in exported] == sorted((f["severity"] for f in exported), key=sev.index)
    first_nine = [f["id"] for f in findings(owner, sort_by="severity")][:9]
    assert [f["id"] for f in owner.get("/findings/export?sort_by=severity&limit=9").json()] == first_nine
    for q, path in [("severity=urgent", "query.severity"), ("sort_by=color", "query.sort_by"), ("limit=0", "query.limit"),
                    ("limit=99999999999", "query.limit")]:
        b = assert_envelope(owner.get(f"/findings/export?{q}"), 422)
        assert path in {i["path"] for i in b["issues"]}, (q, b)
    other, _, _ = signup("filters-other")
    assert other.get("/findings/export").json() == []


def test_status_changes_expiry_history_and_roles(stack, signup):
    owner, body, _ = signup("status")
    tenant, conn = body["workspace"]["id"], str(uuid.uuid4())
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [result(tenant, conn, "aws.s3.bucket_policy_public", n, severity="critical")
                                                             for n in ("x", "y")])
    items = eventually(lambda: findings(owner, connection_id=conn) if len(findings(owner, connection_id=conn)) == 2 else None)
    x, y = sorted(items, key=lambda f: f["resource_name"])
    assert_envelope(owner.post(f"/findings/{x['id']}/suppress", {}), 422)
    assert_envelope(owner.post(f"/findings/{x['id']}/suppress", {"reason": "ok", "expires_at": "2001-01-01T00:00:00Z"}), 422)
    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    r = owner.post(f"/findings/{x['id']}/suppress", {"reason": "compensating control: WAF", "expires_at": soon})
    assert r.status_code == 200 and r.json()["status"] == "suppressed" and r.json()["status_reason"] == "compensating control: WAF"
    assert_envelope(owner.post(f"/findings/{x['id']}/suppress", {"reason": "again"}), 409, "invalid_transition")
    r = owner.post(f"/findings/{y['id']}/accept-risk", {"reason": "public website bucket by design"})
    assert r.json()["status"] == "accepted_risk"
    # The suppression expires: back to open, with an event.
    eventually(lambda: owner.get(f"/findings/{x['id']}").json()["status"] == "open", timeout=10, what="expiry")
    hist = owner.get(f"/findings/{x['id']}").json()["history"]
    assert [h["event_type"] for h in hist] == ["expired", "suppressed", "opened"] and hist[1]["actor"] == body["user"]["id"]
    r = owner.post(f"/findings/{y['id']}/reopen", {"reason": "policy changed"})
    assert r.json()["status"] == "open"
    assert_envelope(owner.post(f"/findings/{y['id']}/reopen", {}), 409)
    key = owner.post("/api-keys/", {"name": "ro", "scopes": ["read"], "role": "viewer"}).json()["key"]
    viewer = Client(stack.url, api_key=key)
    assert viewer.get(f"/findings/{x['id']}").status_code == 200
    assert_envelope(viewer.post(f"/findings/{x['id']}/suppress", {"reason": "nope"}), 403)
    other, _, _ = signup("status-other")
    for method, path in [("GET", f"/findings/{x['id']}"), ("POST", f"/findings/{x['id']}/reopen"), ("POST", f"/findings/{x['id']}/ai-remediation")]:
        assert_envelope(other.call(method, path, {"reason": "steal"}), 404)
    assert other.get("/findings/").json()["total"] == 0 and other.get(f"/finding-events?finding_id={x['id']}").json()["total"] == 0
    assert_envelope(owner.get("/findings/not-a-uuid"), 404)
    assert_envelope(owner.get("/finding-events?event_type=bogus"), 422)
    assert_envelope(owner.get("/finding-events?start=yesterday"), 422)
    ev = owner.get(f"/finding-events?finding_id={x['id']}&start={datetime.now(timezone.utc).date().isoformat()}").json()
    assert ev["total"] == 3


MALFORMED_ON_PURPOSE = set()  # connections whose result batches break the contract on purpose


def test_malformed_results_are_dropped_and_events_carry_the_finding(stack, signup):
    owner, body, _ = signup("malformed")
    tenant, conn = body["workspace"]["id"], str(uuid.uuid4())
    MALFORMED_ON_PURPOSE.add(conn)
    # Unknown severity, a result that is not an object, a result without a fingerprint: each batch is
    # dropped (never retried forever, never half applied) and the next good batch still lands.
    bad = result(tenant, conn, "aws.s3.bucket_acl_public_read", "bad", severity="apocalyptic")
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", "ok-1"), bad])
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [42])
    no_fp = result(tenant, conn, "aws.s3.bucket_acl_public_read", "nofp")
    del no_fp["fingerprint"]
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [no_fp])
    # Tags that are not strings, evidence that is not an object: against the contract, dropped too.
    bad_tags = result(tenant, conn, "aws.s3.bucket_acl_public_read", "badtags")
    bad_tags["tags"] = {"team": "x", "n": 1}
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [bad_tags])
    bad_evidence = result(tenant, conn, "aws.s3.bucket_acl_public_read", "badevidence")
    bad_evidence["evidence"] = [1, 2]
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [bad_evidence])
    scan = str(uuid.uuid4())
    # A name that needs escaping in the event's JSON (quote, backslash, newline, non-ASCII).
    good = 'good "q" \\ é\n'
    publish_results(stack, tenant, scan, conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", good, severity="critical",
                                                       tags={"team": "x"})])
    eventually(lambda: len(findings(owner, connection_id=conn)) == 1, what="the good batch")
    time.sleep(1)
    [f] = findings(owner, connection_id=conn)
    assert f["resource_name"] == good and f["severity"] == "critical" and f["status"] == "open"
    # The bus event: the envelope id is the finding event's id; data names the finding, no nulls.
    ev = stack.bus.wait_for_finding_event(lambda b: b["data"].get("finding_id") == f["id"], "finding.opened", 10)
    assert ev["type"] == "finding.opened" and ev["tenant_id"] == tenant and ev["occurred_at"].endswith("Z")
    d = ev["data"]
    assert d["event_id"] == ev["id"] and d["connection_id"] == conn and d["scan_id"] == scan and d["status"] == "open"
    assert d["severity"] == "critical" and d["title"] == f["title"] and d["resource_id"] == f["resource_id"]
    assert None not in d.values() and "previous_status" not in d
    feed = owner.get(f"/finding-events?finding_id={f['id']}").json()["items"]
    assert [e["id"] for e in feed] == [ev["id"]]


def test_result_batches_are_work_and_legacy_event_batches_still_land(stack, signup):
    owner, body, _ = signup("legacy")
    tenant, conn = body["workspace"]["id"], str(uuid.uuid4())
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", "new-subject")])
    # A batch an earlier version published as an event, still in the events stream after an upgrade.
    legacy = {"id": str(uuid.uuid4()), "type": "scan.results", "occurred_at": NOW(), "tenant_id": tenant,
              "data": {"scan_id": str(uuid.uuid4()), "connection_id": conn, "provider": "aws", "account_id": "123456789012", "service": "s3",
                       "region": "global", "batch": 1, "batches": 1,
                       "results": [result(tenant, conn, "aws.s3.bucket_acl_public_read", "old-subject")]}}
    stack.bus.publish_event("vigil.events.scan.results", legacy)
    eventually(lambda: {f["resource_name"] for f in findings(owner, connection_id=conn)} == {"new-subject", "old-subject"}, what="both batches")
    # Batches are work: taken once, deleted when acknowledged (work-queue retention), all of them done.
    info = json.loads(stack.bus.request("$JS.API.STREAM.INFO.VIGIL_JOBS", b"").data)
    consumer = lambda: json.loads(stack.bus.request("$JS.API.CONSUMER.INFO.VIGIL_JOBS.findings-results", b"").data)
    eventually(lambda: (lambda c: c["num_pending"] == 0 and c["num_ack_pending"] == 0)(consumer()), what="results consumed")
    assert info["config"]["retention"] == "workqueue"


def test_suppression_rules_and_ai_remediation(stack, signup):
    owner, body, _ = signup("supp")
    tenant, conn = body["workspace"]["id"], str(uuid.uuid4())
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [
        result(tenant, conn, "aws.s3.bucket_acl_public_read", "logs-1", tags={"env": "dev"}),
        result(tenant, conn, "aws.s3.bucket_versioning_disabled", "logs-2", tags={"env": "dev"}),
        result(tenant, conn, "aws.s3.bucket_acl_public_read", "prod-1", tags={"env": "prod"})])
    eventually(lambda: len(findings(owner, connection_id=conn)) == 3)
    assert_envelope(owner.post("/findings/suppression-rules", {"name": "x", "reason": "why"}), 422)
    assert_envelope(owner.post("/findings/suppression-rules", {"name": "x", "reason": "why", "resource": "(unclosed"}), 422)
    r = owner.post("/findings/suppression-rules", {"name": "dev buckets", "rule": "aws.s3.*", "resource": "^logs-", "tags": {"env": "dev"},
                                                   "reason": "dev sandbox, no data"})
    assert r.status_code == 201 and r.json()["matched"] == 2, r.text
    rule_id = r.json()["id"]
    status = lambda: {f["resource_name"]: f["status"] for f in findings(owner, connection_id=conn)}
    assert status() == {"logs-1": "suppressed", "logs-2": "suppressed", "prod-1": "open"}
    # New matching findings are suppressed on arrival.
    publish_results(stack, tenant, str(uuid.uuid4()), conn, [result(tenant, conn, "aws.s3.bucket_policy_public", "logs-3", tags={"env": "dev"})])
    eventually(lambda: status().get("logs-3") == "suppressed", what="logs-3 suppressed on arrival")
    assert owner.get("/findings/suppression-rules").json()["items"][0]["rule"] == "aws.s3.*"
    other, _, _ = signup("supp-other")
    assert other.get("/findings/suppression-rules").json()["total"] == 0
    assert_envelope(other.delete(f"/findings/suppression-rules/{rule_id}"), 404)
    assert_envelope(owner.delete("/findings/suppression-rules/not-a-uuid"), 404)
    key = owner.post("/api-keys/", {"name": "analyst", "role": "analyst"}).json()["key"]
    assert_envelope(Client(stack.url, api_key=key).post("/findings/suppression-rules", {"name": "x", "rule": "*", "reason": "nope"}), 403)
    assert owner.delete(f"/findings/suppression-rules/{rule_id}").status_code == 204
    assert set(status().values()) == {"open"}

    prod = [f for f in findings(owner, connection_id=conn) if f["resource_name"] == "prod-1"][0]
    g = owner.post(f"/findings/{prod['id']}/ai-remediation").json()
    assert g["cached"] is False and 'bucket = "prod-1"' in g["terraform"] and "prod-1" in " ".join(g["cli_commands"])
    assert g["console_steps"] and g["generated_by"] == "rule-template"
    assert owner.post(f"/findings/{prod['id']}/ai-remediation").json()["cached"] is True


def test_rules_api_and_the_scanner_uses_the_effective_rules(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("rules")
    listed = owner.get("/rules/?limit=500").json()
    assert listed["total"] >= 76 and not any(r["custom"] for r in listed["items"])
    builtin = json.load(open(os.path.join(ROOT, "contracts", "rules", "builtin.json")))
    assert owner.get("/rules/?service=s3").json()["total"] == len([r for r in builtin if r["service"] == "s3"]) >= 8
    assert owner.get("/rules/?framework=cis_aws_3_0&severity=critical").json()["total"] >= 3
    assert owner.get("/rules/aws.s3.bucket_policy_public").json()["compliance"]["cis_aws_3_0"] == ["2.1.4"]
    assert_envelope(owner.get("/rules/aws.nope"), 404)
    bad = assert_envelope(owner.post("/rules/", {"title": "x", "severity": "high", "resource_type": "aws.s3.bucket",
                                                 "condition": {"path": "name", "op": "resembles", "value": "x"}}), 422)
    assert "unknown operator resembles" in bad["issues"][0]["message"]
    assert_envelope(owner.post("/rules/", {"title": "x", "severity": "urgent", "resource_type": "aws.moon.base", "condition": {}}), 422)
    r = owner.post("/rules/", {"id": "custom.bad_buckets", "title": "Bucket named like a bad one", "severity": "medium",
                               "resource_type": "aws.s3.bucket", "condition": {"path": "name", "op": "regex", "value": "^vigil-bad-"},
                               "compliance": {"soc2": ["CC6.1"]}})
    assert r.status_code == 201 and r.json()["custom"] is True
    assert_envelope(owner.post("/rules/", {"id": "custom.bad_buckets", "title": "dup", "severity": "low", "resource_type": "aws.s3.bucket",
                                           "condition": {"path": "name", "op": "exists"}}), 409)
    assert owner.patch("/rules/aws.s3.bucket_versioning_disabled", {"enabled": False}).json()["enabled"] is False
    p = owner.patch("/rules/aws.s3.bucket_policy_public", {"severity": "low"}).json()
    assert p["severity"] == "low" and p["default_severity"] == "critical"
    assert_envelope(owner.patch("/rules/aws.s3.bucket_policy_public", {"severity": "mild"}), 422)
    other, _, _ = signup("rules-other")
    assert_envelope(other.get("/rules/custom.bad_buckets"), 404)
    assert other.get("/rules/aws.s3.bucket_versioning_disabled").json()["enabled"] is True

    conn = connect(owner, endpoint, manifest, regions=["us-east-1"])
    scan = wait_scan(owner, trigger(owner, conn, services=["s3"]))
    res = []
    cursor = None
    while True:
        page = owner.get(f"/scans/{scan['id']}/results?limit=200" + (f"&cursor={cursor}" if cursor else "")).json()
        res += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    ids = {r["rule_id"] for r in res}
    assert "aws.s3.bucket_versioning_disabled" not in ids and "custom.bad_buckets" in ids
    assert {r["resource_name"] for r in res if r["rule_id"] == "custom.bad_buckets" and r["status"] == "FAIL"} == \
        {"vigil-bad-public-read", "vigil-bad-public-write", "vigil-bad-public-policy"}
    assert {r["severity"] for r in res if r["rule_id"] == "aws.s3.bucket_policy_public"} == {"low"}


def test_compliance_scores_against_a_fixture(stack, signup):
    owner, body, _ = signup("compliance")
    tenant, conn, scan = body["workspace"]["id"], str(uuid.uuid4()), str(uuid.uuid4())
    # Rule A fails on one bucket; rule B passes on one key. Nothing else is evaluated.
    publish_results(stack, tenant, scan, conn, [
        result(tenant, conn, "aws.s3.bucket_acl_public_read", "pub", severity="critical"),
        result(tenant, conn, "aws.kms.key_rotation_disabled", "key-1", status="PASS", severity="medium", service="kms", rtype="aws.kms.key")])
    publish_completed(stack, tenant, scan, conn, [("s3", "global", 2)])
    score = eventually(lambda: (lambda s: s if s["scans"] else None)(owner.get("/compliance/score").json()), what="a scored scan")
    fw = {f["framework_id"]: f for f in score["frameworks"]}
    # CIS: 2.1.4 failed (A), 3.6 passed (B) → 1 of 2. SOC 2: CC6.1 is mapped by both, A fails → 0 of 1.
    assert (fw["cis_aws_3_0"]["passed"], fw["cis_aws_3_0"]["assessed"], fw["cis_aws_3_0"]["score"]) == (1, 2, 50.0)
    assert (fw["soc2"]["passed"], fw["soc2"]["assessed"], fw["soc2"]["score"]) == (0, 1, 0.0)
    # PCI: A → 1.4.1, 7.2.1 failed; B → 3.7.4 passed. ISO: A → A.8.3, A.8.12 failed; B → A.8.24 passed. NIST: A → AC-3, AC-6; B → SC-12.
    assert (fw["pci_dss_4_0"]["passed"], fw["pci_dss_4_0"]["assessed"]) == (1, 3)
    assert (fw["iso27001_2022"]["passed"], fw["iso27001_2022"]["assessed"]) == (1, 3)
    assert (fw["nist_800_53"]["passed"], fw["nist_800_53"]["assessed"]) == (1, 3)
    assert score["overall"]["passed"] == 4 and score["overall"]["assessed"] == 12 and score["overall"]["score"] == 33.3
    assert score["connections"][0]["connection_id"] == conn
    detail = owner.get("/compliance/score/cis_aws_3_0").json()
    controls = {c["control_id"]: c for c in detail["controls"]}
    assert controls["2.1.4"]["status"] == "failed" and controls["2.1.4"]["failing_resources"][0]["resource_name"] == "pub"
    assert controls["3.6"]["status"] == "passed" and controls["1.4"]["status"] == "not_assessed"
    assert_envelope(owner.get("/compliance/score/hipaa"), 404)
    assert_envelope(owner.get("/compliance/score?connection_id=x"), 422)
    frameworks = owner.get("/compliance/frameworks").json()["items"]
    assert {f["id"] for f in frameworks} == {"cis_aws_3_0", "cis_debian_12", "pci_dss_4_0", "soc2", "iso27001_2022", "nist_800_53"}
    report = owner.get("/compliance/report?framework_id=cis_aws_3_0").json()
    assert report["score"]["overall"]["score"] == 33.3 and report["frameworks"][0]["framework"]["id"] == "cis_aws_3_0"
    other, _, _ = signup("compliance-other")
    assert other.get("/compliance/score").json()["scans"] == []


def test_reports_in_every_format(stack, signup):
    owner, body, _ = signup("reports")
    tenant, conn, scan = body["workspace"]["id"], str(uuid.uuid4()), str(uuid.uuid4())
    publish_results(stack, tenant, scan, conn, [result(tenant, conn, "aws.s3.bucket_acl_public_read", f"b-{i}", severity="critical")
                                                for i in range(3)] + [result(tenant, conn, "aws.ebs.volume_unattached", "vol-1", severity="low",
                                                                            service="ec2", rtype="aws.ec2.volume", savings=4.0)])
    publish_completed(stack, tenant, scan, conn, [("s3", "global", 4)])
    eventually(lambda: len(findings(owner)) == 4)
    made = {}
    for rtype in ("executive_summary", "compliance", "findings_export"):
        for fmt in ("json", "csv", "html", "pdf"):
            r = owner.post("/reports/generate", {"type": rtype, "format": fmt})
            assert r.status_code == 200 and r.json()["status"] == "completed", r.text
            made[(rtype, fmt)] = r.json()
    for fmt in ("sarif", "ocsf"):
        made[("findings_export", fmt)] = owner.post("/reports/generate", {"type": "findings_export", "format": fmt}).json()
    assert_envelope(owner.post("/reports/generate", {"type": "executive_summary", "format": "sarif"}), 422)
    assert_envelope(owner.post("/reports/generate", {"type": "poem"}), 422)
    dl = lambda k: requests_get(owner, made[k]["id"])
    r = dl(("findings_export", "csv"))
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4 and {x["rule"] for x in rows} == {"aws.s3.bucket_acl_public_read", "aws.ebs.volume_unattached"}
    assert json.loads(dl(("findings_export", "json")).text)["items"][0]["severity"] == "critical"
    assert "<table>" in dl(("executive_summary", "html")).text and "Top risks" in dl(("executive_summary", "html")).text
    ex = json.loads(dl(("executive_summary", "json")).text)
    assert ex["open_by_severity"]["critical"] == 3 and ex["estimated_monthly_savings"] == 4.0
    sarif = json.loads(dl(("findings_export", "sarif")).text)
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == 4
    assert {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]} == {"aws.s3.bucket_acl_public_read", "aws.ebs.volume_unattached"}
    ocsf = json.loads(dl(("findings_export", "ocsf")).text)
    assert len(ocsf) == 4 and all(o["class_uid"] == 2004 and o["severity_id"] in (2, 5) for o in ocsf)
    # Every PDF is a real PDF that a PDF reader renders.
    with tempfile.TemporaryDirectory() as tmp:
        for rtype in ("executive_summary", "compliance", "findings_export"):
            r = dl((rtype, "pdf"))
            assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-1.4")
            path = os.path.join(tmp, f"{rtype}.pdf")
            open(path, "wb").write(r.content)
            out = subprocess.run(["pdftoppm", "-png", "-r", "40", path, os.path.join(tmp, rtype)], capture_output=True, text=True)
            assert out.returncode == 0 and "Error" not in out.stderr, out.stderr
            assert any(n.startswith(rtype) and n.endswith(".png") for n in os.listdir(tmp))
            text = subprocess.run(["pdftotext", path, "-"], capture_output=True, text=True).stdout
            assert "Generated by Vigil" in text
    listed = owner.get("/reports/?limit=5").json()
    assert listed["total"] == 14 and len(listed["items"]) == 5 and listed["next_cursor"]
    other, _, _ = signup("reports-other")
    rid = made[("findings_export", "pdf")]["id"]
    assert_envelope(other.get(f"/reports/{rid}"), 404)
    assert_envelope(other.get(f"/reports/{rid}/download"), 404)
    assert other.get("/reports/").json()["total"] == 0


def requests_get(client, report_id):
    import requests
    r = requests.get(f"{client.base}/api/v1/reports/{report_id}/download", headers=client.headers(), timeout=15)
    assert r.status_code == 200, r.text
    return r


def wait_ingested(client, scan_id, timeout=30):
    """Until the scan says its findings are final (findings_ingested); then reads need no polling."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = client.get(f"/scans/{scan_id}").json()
        if s.get("findings_ingested"):
            assert s["findings_ingested_at"]
            return s
        time.sleep(0.05)
    raise AssertionError(f"scan {scan_id} never reported findings_ingested")


def test_real_scans_open_resolve_and_reopen(stack, signup):
    """Against a moto account of its own: fix a planted issue, rescan, see it resolved; break it again.
    Reads right after `findings_ingested` must already be final (no polling)."""
    proc, endpoint = start_moto()
    try:
        manifest = json.loads(subprocess.run(["python3", os.path.join(ROOT, "scripts", "aws-seed.py"), endpoint],
                                             capture_output=True, text=True, check=True).stdout)
        owner, _, _ = signup("realscan")
        conn = connect(owner, endpoint, manifest, regions=["us-east-1"])
        s1 = wait_ingested(owner, wait_scan(owner, trigger(owner, conn, services=["s3", "sqs"]))["id"])
        fails = sum(s1["findings_count"].values())
        assert owner.get(f"/findings/?connection_id={conn}&limit=1").json()["total"] == fails
        target = lambda: [f for f in findings(owner, connection_id=conn, rule_code="aws.sqs.queue_unencrypted")][0]
        assert target()["status"] == "open" and target()["resource_name"] == "vigil-bad-queue"
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=manifest["access_key_id"],
                           aws_secret_access_key=manifest["secret_access_key"])
        url = sqs.get_queue_url(QueueName="vigil-bad-queue")["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"SqsManagedSseEnabled": "true"})
        # A partial scan (one region fails) does not resolve it.
        partial = wait_scan(owner, trigger(owner, conn, regions=["us-east-1", "xx-fake-1"], services=["sqs"]))
        assert partial["complete"] is False
        time.sleep(1.5)
        assert target()["status"] == "open"
        wait_ingested(owner, wait_scan(owner, trigger(owner, conn, services=["s3", "sqs"]))["id"])
        assert target()["status"] == "resolved"
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"SqsManagedSseEnabled": "false"})
        wait_ingested(owner, wait_scan(owner, trigger(owner, conn, services=["sqs"]))["id"])
        assert target()["status"] == "open"
        cov = owner.get("/findings/coverage-summary").json()
        assert cov["connections"][0]["connection_id"] == conn and cov["connections"][0]["checks_evaluated"] > 0
    finally:
        stop_moto(proc)


def test_finding_events_validate_against_their_schemas(stack):
    import jsonschema
    schemas = os.path.join(ROOT, "contracts", "schemas")
    seen = [(s, b) for s, _, b in stack.bus.received("vigil.events.") if s.startswith(("vigil.events.finding.", "vigil.events.rule.",
                                                                                        "vigil.events.report.", "vigil.events.scan."))
            and s != "vigil.events.scan.results"  # the legacy subject, published on purpose by a test
            # Finding events published alone, as before batching, on purpose by test_notifier (the notifier still takes them).
            and not (s.startswith("vigil.events.finding.") and s != "vigil.events.finding.batch")]
    seen += [(s, b) for s, _, b in stack.bus.received("vigil.jobs.findings.results") if s == "vigil.jobs.findings.results"
             and b["data"].get("connection_id") not in MALFORMED_ON_PURPOSE]
    assert any(s == "vigil.events.finding.batch" for s, _ in seen) and any(s == "vigil.jobs.findings.results" for s, _ in seen)
    for subject, body in seen:
        name = subject.replace("vigil.events.", "event.").replace("vigil.jobs.", "job.")
        jsonschema.validate(body["data"], json.load(open(os.path.join(schemas, name + ".json"))))
