"""Cost waste from utilisation: moto seeded with running resources and 14 days of CloudWatch metrics
(scripts/waste-seed.py). Idle ones are found with their figures and their saving from the price table;
busy twins and resources without metrics are not; the scan policy changes the next scan's outcome."""
import json
import os
import subprocess
import time

import pytest

from conftest import ROOT, assert_envelope, join_workspace, start_moto, stop_moto

SERVICES = ["ec2", "rds", "elbv2", "dynamodb", "elasticache", "redshift", "logs"]


@pytest.fixture(scope="module")
def waste():
    proc, endpoint = start_moto()
    try:
        out = subprocess.run(["python3", os.path.join(ROOT, "scripts", "waste-seed.py"), endpoint], capture_output=True, text=True, check=True)
        yield endpoint, json.loads(out.stdout)
    finally:
        stop_moto(proc)


def scan(owner, cid):
    sid = owner.post("/scans/trigger", {"connection_id": cid, "regions": ["us-east-1"], "services": SERVICES}).json()["id"]
    deadline = time.time() + 120
    while time.time() < deadline:
        s = owner.get(f"/scans/{sid}").json()
        if s["status"] in ("completed", "failed"):
            assert s["status"] == "completed" and s["complete"], s
            return s
        time.sleep(0.2)
    raise AssertionError("scan did not finish")


def findings_of(owner, cid, scan_id):
    deadline = time.time() + 30
    while time.time() < deadline:
        items = owner.get(f"/findings/?connection_id={cid}&status=open&limit=500").json()["items"]
        if any(f["scan_job_id"] == scan_id for f in items) or not items:
            time.sleep(1.0)  # let the scan's last batches land
            return owner.get(f"/findings/?connection_id={cid}&status=open&limit=500").json()["items"]
        time.sleep(0.2)
    return []


def test_idle_resources_are_found_with_figures_and_prices(stack, signup, waste):
    endpoint, m = waste
    owner, _, _ = signup("waste")
    r = owner.post("/connections/", {"name": "waste", "provider": "aws", "settings": {"regions": ["us-east-1"], "endpoint_url": endpoint},
                                     "credentials": {"access_key_id": "AKIAVIGILWASTE000001",
                                                     "secret_access_key": "vigil/waste/secret/key/00000000000000000"}})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    s = scan(owner, cid)
    found = findings_of(owner, cid, s["id"])
    by = {}
    for f in found:
        by.setdefault(f["rule_code"], {})[f["resource_name"]] = f
    idle, busy = m["idle"], m["busy"]
    expected = {"aws.ec2.instance_idle": idle["ec2"], "aws.rds.instance_idle": idle["rds"], "aws.ec2.nat_gateway_idle": idle["nat"],
                "aws.ebs.volume_no_io": idle["ebs"], "aws.elbv2.load_balancer_no_traffic": idle["elbv2"],
                "aws.dynamodb.table_overprovisioned": idle["dynamodb"], "aws.elasticache.cluster_idle": idle["elasticache"],
                "aws.redshift.cluster_idle": idle["redshift"], "aws.logs.log_group_no_retention": idle["logs"],
                "aws.ec2.instance_underused": busy["ec2_underused"], "aws.ec2.previous_generation": idle["ec2_previous_generation"]}
    for rule, name in expected.items():
        assert name in by.get(rule, {}), (rule, name, sorted(by.get(rule, {})))
    # Busy twins and the instance without metrics are never flagged by a utilisation rule.
    utilisation_rules = [r for r in expected if r not in ("aws.ec2.previous_generation", "aws.logs.log_group_no_retention")]
    for rule in utilisation_rules:
        flagged = set(by.get(rule, {}))
        assert not flagged & set(busy.values()) - {busy["ec2_underused"]}, (rule, flagged)
        assert not flagged & set(m["unknown"]), (rule, flagged)
    assert busy["logs"] not in by.get("aws.logs.log_group_no_retention", {})
    # The finding quotes the figures and the policy, and prices the saving from the table.
    f = by["aws.ec2.instance_idle"][idle["ec2"]]
    assert "CPU avg 2 %" in f["evidence"]["utilization.summary"] and "over 14 days" in f["evidence"]["utilization.summary"], f["evidence"]
    assert f["evidence"]["utilization.policy"].startswith("CPU ≤ 5 %") and f["evidence"]["price_region"] == "us-east-1"
    assert f["estimated_monthly_savings"] == pytest.approx(0.0832 * 730, abs=0.01)
    assert by["aws.rds.instance_idle"][idle["rds"]]["estimated_monthly_savings"] == pytest.approx(0.068 * 730, abs=0.01)
    assert by["aws.ec2.nat_gateway_idle"][idle["nat"]]["estimated_monthly_savings"] == pytest.approx(0.045 * 730, abs=0.01)
    assert by["aws.ebs.volume_no_io"][idle["ebs"]]["estimated_monthly_savings"] == pytest.approx(100 * 0.08, abs=0.01)
    assert by["aws.redshift.cluster_idle"][idle["redshift"]]["estimated_monthly_savings"] == pytest.approx(0.25 * 730, abs=0.01)
    under = by["aws.ec2.instance_underused"][busy["ec2_underused"]]
    assert under["evidence"]["rightsize_to"] == "m5.large" and under["estimated_monthly_savings"] == pytest.approx(0.096 * 730, abs=0.01)
    ddb = by["aws.dynamodb.table_overprovisioned"][idle["dynamodb"]]
    # 100 provisioned, about 2 used: keep 3 (25 % headroom, rounded up), save 97 units of each kind.
    assert ddb["estimated_monthly_savings"] == pytest.approx(97 * 730 * (0.00013 + 0.00065), abs=0.05)
    summary = owner.get("/findings/summary").json()
    assert summary["estimated_monthly_savings"] > 500 and summary["savings_by_service"]["ec2"] > 60
    assert summary["savings_by_service"]["redshift"] == pytest.approx(182.5, abs=0.01)
    # Reports carry a cost section with a chart (an SVG in HTML, filled bars in the PDF).
    for fmt in ("json", "html", "pdf"):
        rep = owner.post("/reports/generate", {"type": "executive_summary", "format": fmt})
        assert rep.status_code == 200, rep.text
        body = owner.get(f"/reports/{rep.json()['id']}/download").content
        if fmt == "json":
            data = json.loads(body)
            assert data["savings_by_service"]["redshift"] == pytest.approx(182.5, abs=0.01) and len(data["top_savings"]) == 10
        elif fmt == "html":
            assert b"Cost: monthly savings by service" in body and b"<svg" in body and b"<rect" in body
        else:
            assert body.startswith(b"%PDF") and b" re f" in body
            import tempfile
            with tempfile.NamedTemporaryFile(suffix=".pdf") as t:
                t.write(body)
                t.flush()
                assert subprocess.run(["pdftoppm", "-png", "-r", "30", t.name, t.name], capture_output=True).returncode == 0

    # The policy: validated, audited, and applied by the next scan. Thresholds for ec2 that make the busy
    # twin idle flag it next time; none of the rest changes.
    for body, path in (({"global": {"cpu_percent": 101}}, "body.global.cpu_percent"), ({"global": {"lookback_days": 0}}, "body.global.lookback_days"),
                       ({"services": {"lambada": {"cpu_percent": 3}}}, "body.services.lambada"), ({}, "body")):
        r = owner.patch("/settings/scan-policy", body)
        assert_envelope(r, 422)
        assert path in [i["path"] for i in r.json()["issues"]], r.json()
    viewer = join_workspace(stack, owner, "viewer")
    assert viewer.get("/settings/scan-policy").json()["effective"]["ec2"]["cpu_percent"] == 5
    assert_envelope(viewer.patch("/settings/scan-policy", {"global": {"cpu_percent": 10}}), 403)
    r = owner.patch("/settings/scan-policy", {"services": {"ec2": {"cpu_percent": 70, "network_mb": 10000}}})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["effective"]["ec2"]["cpu_percent"] == 70 and p["effective"]["rds"]["cpu_percent"] == 5 and p["updated_by"]
    assert stack.bus.wait_for(lambda e: e["type"] == "scan_policy.updated", "vigil.events.scan_policy.updated")
    s2 = scan(owner, cid)
    again = findings_of(owner, cid, s2["id"])
    idle_now = {f["resource_name"] for f in again if f["rule_code"] == "aws.ec2.instance_idle"}
    assert busy["ec2"] in idle_now and idle["ec2"] in idle_now, idle_now
    f = next(f for f in again if f["rule_code"] == "aws.ec2.instance_idle" and f["resource_name"] == busy["ec2"])
    assert f["evidence"]["utilization.policy"].startswith("CPU ≤ 70 %")
    assert owner.patch("/settings/scan-policy", {"services": {"ec2": None}}).json()["services"] == {}

    other, _, _ = signup("waste-other")
    assert other.get("/settings/scan-policy").json()["effective"]["ec2"]["cpu_percent"] == 5


def test_account_settings_and_default_network_resources_are_covered(stack, signup, waste):
    """The two classes of AWS gap: a setting of the account rather than of a resource (S3's account-level
    Block Public Access), and a default network resource left in place (the default VPC, and instances
    running in it). Fixing the setting resolves its finding on the next scan."""
    import boto3
    endpoint, m = waste
    owner, _, _ = signup("aws-gaps")
    cid = owner.post("/connections/", {"name": "gaps", "provider": "aws", "settings": {"regions": ["us-east-1"], "endpoint_url": endpoint},
                                       "credentials": {"access_key_id": "AKIAVIGILWASTE000001",
                                                       "secret_access_key": "vigil/waste/secret/key/00000000000000000"}}).json()["id"]

    def scan_rules():
        sid = owner.post("/scans/trigger", {"connection_id": cid, "regions": ["us-east-1"], "services": ["s3", "ec2"]}).json()["id"]
        deadline = time.time() + 120
        while owner.get(f"/scans/{sid}").json()["status"] not in ("completed", "failed") and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)
        return {f["rule_code"] for f in owner.get(f"/findings/?connection_id={cid}&status=open&limit=500").json()["items"]}

    rules = scan_rules()
    assert {"aws.s3.account_public_access_block_disabled", "aws.vpc.default_vpc_present", "aws.vpc.instances_in_default_vpc"} <= rules, rules
    # An instance without an instance profile is a fact, not a misconfiguration: informational only.
    info = owner.get(f"/findings/?connection_id={cid}&rule_code=aws.ec2.instance_without_iam_role&limit=1").json()["items"]
    assert not info or info[0]["severity"] == "info"
    # S3 Control, path-style against moto (boto3 would put the account id in the host name).
    import requests
    body = ('<PublicAccessBlockConfiguration xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/"><BlockPublicAcls>true</BlockPublicAcls>'
            '<IgnorePublicAcls>true</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy>'
            '<RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>')
    r = requests.put(endpoint + "/v20180820/configuration/publicAccessBlock", data=body, timeout=10,
                     headers={"x-amz-account-id": m["account"], "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAVIGILWASTE000001/20260101/us-east-1/s3/aws4_request"})
    assert r.status_code in (200, 201), r.text
    assert "aws.s3.account_public_access_block_disabled" not in scan_rules()


def test_handled_findings_scan_history_batches_and_meta(stack, signup, waste):
    import re
    import uuid
    endpoint, m = waste
    owner, _, _ = signup("cost-api")
    other, _, _ = signup("cost-api-other")
    body = {"provider": "aws", "settings": {"regions": ["us-east-1"], "endpoint_url": endpoint},
            "credentials": {"access_key_id": "AKIAVIGILWASTE000001", "secret_access_key": "vigil/waste/secret/key/00000000000000000"}}
    c1 = owner.post("/connections/", {"name": "one", **body}).json()["id"]
    c2 = owner.post("/connections/", {"name": "two", **body}).json()["id"]
    # One trigger, several connections: every scan starts (or none); the reply lists them all.
    r = owner.post("/scans/trigger", {"connection_ids": [c1, c2], "regions": ["us-east-1"], "services": ["logs"]})
    assert r.status_code == 202, r.text
    ids = r.json()["scan_ids"]
    assert len(ids) == 2 and r.json()["id"] == ids[0]
    assert len(owner.post("/scans/trigger", {"all_connections": True, "services": ["logs"], "regions": ["us-east-1"]}).json()["scan_ids"]) == 2
    assert_envelope(owner.post("/scans/trigger", {"connection_ids": []}), 422)
    assert_envelope(owner.post("/scans/trigger", {"connection_ids": ["nope"]}), 422)
    assert_envelope(other.post("/scans/trigger", {"connection_ids": [c1]}), 404)
    for sid in ids:
        deadline = time.time() + 60
        while owner.get(f"/scans/{sid}").json()["status"] not in ("completed", "failed") and time.time() < deadline:
            time.sleep(0.2)
    time.sleep(1.5)
    f = next(x for x in owner.get(f"/findings/?connection_id={c1}&rule_code=aws.logs.log_group_no_retention").json()["items"]
             if x["resource_name"] == m["idle"]["logs"])

    # Handled: suppressed with the note, listed under /findings/handled, isolated per workspace.
    r = owner.post(f"/findings/{f['id']}/handled", {"note": "kept for the audit until March"})
    assert r.status_code == 200 and r.json()["status"] == "suppressed" and r.json()["status_reason"] == "handled: kept for the audit until March"
    assert [x["id"] for x in owner.get("/findings/handled").json()["items"]] == [f["id"]]
    assert other.get("/findings/handled").json()["items"] == []
    assert_envelope(other.post(f"/findings/{f['id']}/handled", {}), 404)
    assert_envelope(owner.post(f"/findings/{f['id']}/handled", {"note": "x" * 2000}), 422)

    # A finished scan leaves the history; its findings and their events stay.
    assert owner.delete(f"/scans/{ids[0]}").status_code == 204
    assert_envelope(owner.get(f"/scans/{ids[0]}"), 404)
    assert owner.get(f"/findings/{f['id']}").json()["history"]
    assert_envelope(other.delete(f"/scans/{ids[1]}"), 404)
    running = owner.post("/scans/trigger", {"connection_id": c2, "regions": ["us-east-1"], "services": ["ec2"]}).json()["id"]
    r = owner.delete(f"/scans/{running}")
    assert r.status_code in (204, 409) and (r.status_code == 204 or r.json()["error"] == "scan_running")

    # Meta: what this deployment does, and every error code the code base can answer with.
    caps = owner.get("/meta/capabilities").json()
    builtin = json.load(open(os.path.join(ROOT, "contracts", "rules", "builtin.json")))
    assert caps["rules"] == len(builtin) and caps["cost_rules"] >= 20
    assert {p["name"] for p in caps["providers"]} == {"aws", "linux", "web", "repo"} and caps["features"]["schedules"] is True
    assert "deprecat" in owner.get("/meta/compatibility").json()["deprecation"]
    codes = {c["error"]: c["status"] for c in owner.get("/meta/error-model").json()["codes"]}
    used = set()
    for dirpath, _, files in os.walk(os.path.join(ROOT, "libs")):
        for name in files:
            if name.endswith(".swift"):
                used |= set(re.findall(r'(?:error|code): "([a-z_]+)"', open(os.path.join(dirpath, name)).read()))
    assert used <= set(codes), sorted(used - set(codes))
    assert codes["validation_error"] == 422 and codes["quota_exceeded"] == 403 and codes["rate_limited"] == 429
