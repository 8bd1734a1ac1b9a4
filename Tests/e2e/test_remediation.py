"""Remediation end to end against moto's server: remediation credentials, policy modes, approvals,
every fix action applied → verified → confirmed by a fresh scan → rolled back → verified → confirmed
by another scan, dry runs, rejection, expiry, a SIGKILL mid-execution, isolation and bad input."""
import json
import os
import signal
import subprocess
import time

import boto3
import pytest

from conftest import ROOT, Client, assert_envelope, email_to, start_moto, stop_moto
from test_scans import all_results, connect, trigger, wait_scan

WRITE_KEYS = {"access_key_id": "AKIAREMEDIATE0000001", "secret_access_key": "remediation/secret/key/00000000000000000"}
TERMINAL = ("applied", "failed", "rolled_back", "rollback_failed", "rejected", "expired", "dry_run")


@pytest.fixture(scope="module")
def rem_moto():
    """A moto of its own (fixes change it), seeded like the scan tests'."""
    proc, endpoint = start_moto()
    try:
        out = subprocess.run(["python3", os.path.join(ROOT, "scripts", "aws-seed.py"), endpoint, "--regions", "us-east-1,us-west-2"],
                             capture_output=True, text=True, check=True).stdout
        yield endpoint, json.loads(out)
    finally:
        stop_moto(proc)


def aws(endpoint, service, region="us-east-1"):
    return boto3.client(service, endpoint_url=endpoint, region_name=region, aws_access_key_id=WRITE_KEYS["access_key_id"],
                        aws_secret_access_key=WRITE_KEYS["secret_access_key"])


def scanned(client, conn):
    """Runs a complete scan and waits until the findings service has ingested it."""
    scan_id = trigger(client, conn)
    scan = wait_scan(client, scan_id)
    assert scan["status"] == "completed" and scan["complete"], scan
    deadline = time.time() + 30
    while time.time() < deadline:
        if client.get(f"/findings/?scan_job_id={scan_id}&limit=1").json()["items"] or scan["findings_count"] == {}:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    return scan_id


def finding(client, rule, name, status="open"):
    deadline = time.time() + 20
    while time.time() < deadline:
        r = client.get(f"/findings/?rule_code={rule}&search={name}&limit=50")
        assert r.status_code == 200, r.text
        hits = [f for f in r.json()["items"] if f["resource_name"] == name and (status is None or f["status"] == status)]
        if hits:
            return hits[0]
        time.sleep(0.2)
    raise AssertionError(f"no {status} finding for {rule} on {name}: {client.get(f'/findings/?rule_code={rule}').text}")


def wait_action(client, action_id, statuses=TERMINAL, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.get(f"/remediations/{action_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in statuses:
            return r.json()
        time.sleep(0.2)
    raise AssertionError(f"action {action_id} did not reach {statuses}: {client.get(f'/remediations/{action_id}').text}")


def set_policy(client, **policy):
    r = client.patch("/tenants/current/remediation-policy", policy)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def fixable(stack, rem_moto):
    """A workspace connected to the remediation moto, with write credentials and a complete scan."""
    endpoint, manifest = rem_moto
    email = f"rem-{os.urandom(4).hex()}@vigil.test"
    r = Client(stack.url).post("/auth/signup", {"email": email, "password": "correct-horse-battery", "full_name": "Rem Owner",
                                                  "workspace_name": "Remediation"})
    assert r.status_code == 201, r.text
    owner = Client(stack.url, token=r.json()["access_token"])
    conn = connect(owner, endpoint, manifest)
    r = owner.post(f"/connections/{conn}/remediation-credentials", WRITE_KEYS)
    assert r.status_code == 200, r.text
    assert r.json()["verified"] is True and r.json()["account_id"] == manifest["account"]
    assert WRITE_KEYS["secret_access_key"] not in r.text and r.json()["credentials"]["secret_access_key"] == "****"
    scan_id = scanned(owner, conn)
    return dict(owner=owner, conn=conn, endpoint=endpoint, manifest=manifest, scan_id=scan_id, email=email)


def second_admin(stack, fx, role="admin"):
    """Invites and signs in another member of the fixable workspace."""
    owner = fx["owner"]
    email = f"member-{os.urandom(4).hex()}@vigil.test"
    r = owner.post("/users/invite", {"email": email, "role": role})
    assert r.status_code == 201, r.text
    token = email_to(stack, email, "invitation")["values"]["token"]
    r = Client(stack.url).post(f"/invitations/accept/{token}", {"full_name": "Second", "password": "correct-horse-battery"})
    assert r.status_code == 200, r.text
    return Client(stack.url, token=r.json()["access_token"])


# The planted resource each action is exercised on: (action, rule, resource name from the seed).
CASES = [
    ("s3.block_public_access", "aws.s3.bucket_public_access_block_disabled", "vigil-bad-public-read"),
    ("s3.remove_public_acl", "aws.s3.bucket_acl_public_write", "vigil-bad-public-write"),
    ("s3.remove_public_policy_statements", "aws.s3.bucket_policy_public", "vigil-bad-public-policy"),
    ("s3.enable_default_encryption", "aws.s3.bucket_default_encryption_disabled", "vigil-bad-public-read"),
    ("s3.enable_versioning", "aws.s3.bucket_versioning_disabled", "vigil-bad-public-read"),
    ("ec2.revoke_world_ingress", "aws.ec2.sg_ssh_open_to_world", None),
    ("ec2.enable_ebs_default_encryption", "aws.ebs.default_encryption_disabled", "ec2-settings-us-east-1"),
    ("ec2.make_snapshot_private", "aws.ebs.snapshot_public", None),
    ("ec2.make_image_private", "aws.ec2.ami_public", None),
    ("ec2.release_address", "aws.ec2.eip_unassociated", None),
    ("ec2.delete_unattached_volume", "aws.ebs.volume_unattached", None),
    ("ec2.require_imdsv2", "aws.ec2.instance_imdsv1_enabled", None),
    ("iam.deactivate_stale_access_key", "aws.iam.user_multiple_active_keys", "vigil-bad-admin"),
    ("iam.detach_admin_policy", "aws.iam.user_admin_privileges", "vigil-bad-admin"),
    ("kms.enable_key_rotation", "aws.kms.key_rotation_disabled", "alias/vigil-bad-norotation"),
    ("lambda.remove_public_permission", "aws.lambda.function_public", "vigil-bad-fn"),
    ("sqs.remove_public_policy_statements", "aws.sqs.queue_policy_public", "vigil-bad-queue"),
    ("sns.remove_public_policy_statements", "aws.sns.topic_policy_public", "vigil-bad-topic"),
    ("rds.disable_public_access", "aws.rds.instance_publicly_accessible", "vigil-bad-db"),
    ("rds.make_snapshot_private", "aws.rds.snapshot_public", "vigil-bad-db-snap"),
    ("cloudtrail.enable_log_file_validation", "aws.cloudtrail.log_file_validation_disabled", "vigil-bad-trail"),
]


def planted_name(manifest, rule, name):
    if name:
        assert [rule, name] in manifest["planted"], (rule, name)
        return name
    names = [n for r, n in manifest["planted"] if r == rule]
    assert names, rule
    return names[0]


def result_status(client, scan_id, rule, resource_id):
    hits = [r for r in all_results(client, scan_id, rule_id=rule) if r["resource_id"] == resource_id]
    return hits[0]["status"] if hits else "GONE"


def test_every_action_fixes_verifies_and_rolls_back(stack, fixable):
    owner, conn, manifest = fixable["owner"], fixable["conn"], fixable["manifest"]
    catalog = owner.get("/remediations/actions").json()["items"]
    assert len(catalog) >= 15 and {c[0] for c in CASES} == {a["name"] for a in catalog}
    for a in catalog:
        assert a["permissions"] and a["rollback_permissions"] and a["rules"], a
    set_policy(owner, mode="auto", auto_max_severity="critical")

    requested = {}
    for action, rule, name in CASES:
        name = planted_name(manifest, rule, name)
        f = finding(owner, rule, name)
        assert f["auto_fix"] is True, f
        r = owner.post("/remediations/request", {"finding_id": f["id"]})
        assert r.status_code == 201, (action, r.text)
        body = r.json()
        assert body["action"] == action and body["status"] == "approved" and body["approved_by"] == "policy:auto", body
        plan = body["plan"]
        assert plan["calls"] and plan["action"]["permissions"] and plan["current_state"], plan
        requested[action] = (body["id"], f, rule)

    applied = {action: wait_action(owner, aid) for action, (aid, f, rule) in requested.items()}
    failed = {action: (a["status"], a.get("error"), a.get("verification")) for action, a in applied.items() if a["status"] != "applied"}
    assert not failed, failed
    for action, a in applied.items():
        assert a["verification"]["status"] in ("PASS", "GONE") and a["before_state"] is not None and a["executed_calls"], (action, a)
        assert [h["to_status"] for h in a["history"]] == ["pending_approval", "approved", "executing", "applied"], a["history"]

    # The findings service resolves each fixed finding through the event path.
    for action, (aid, f, rule) in requested.items():
        deadline = time.time() + 20
        while owner.get(f"/findings/{f['id']}").json()["status"] != "resolved" and time.time() < deadline:
            time.sleep(0.2)
        got = owner.get(f"/findings/{f['id']}").json()
        assert got["status"] == "resolved", (action, got)

    # A fresh scan agrees: every fixed rule passes on its resource (or the resource is gone).
    scan_id = scanned(owner, conn)
    for action, (aid, f, rule) in requested.items():
        assert result_status(owner, scan_id, rule, f["resource_id"]) in ("PASS", "GONE"), action
    gone = {a for a, (_, f, rule) in requested.items() if result_status(owner, scan_id, rule, f["resource_id"]) == "GONE"}
    assert gone == {"ec2.release_address", "ec2.delete_unattached_volume"}, gone

    # Roll every one back; each rollback is verified (the rule fails again on the restored resource).
    for action, (aid, f, rule) in requested.items():
        r = owner.post(f"/remediations/{aid}/rollback")
        assert r.status_code == 202 and r.json()["status"] == "rolling_back", (action, r.text)
    restored = {}
    for action, (aid, f, rule) in requested.items():
        a = wait_action(owner, aid)
        assert a["status"] == "rolled_back", (action, a)
        assert a["rollback_verification"]["status"] == "FAIL", (action, a)
        restored[action] = a["rollback_resource_id"]
    assert restored["ec2.delete_unattached_volume"] != requested["ec2.delete_unattached_volume"][1]["resource_id"]

    scan_id = scanned(owner, conn)
    for action, (aid, f, rule) in requested.items():
        assert result_status(owner, scan_id, rule, restored[action]) == "FAIL", action
    # Findings of restored resources are open again (reopened, or new for recreated resources).
    for action, (aid, f, rule) in requested.items():
        if restored[action] == f["resource_id"]:
            deadline = time.time() + 20
            while owner.get(f"/findings/{f['id']}").json()["status"] != "open" and time.time() < deadline:
                time.sleep(0.2)
            assert owner.get(f"/findings/{f['id']}").json()["status"] == "open", action

    events = stack.bus.received("vigil.events.remediation.")
    types = {e["type"] for _, _, e in events if e.get("data", {}).get("action_id") in {v[0] for v in requested.values()}}
    assert {"remediation.approved", "remediation.executing", "remediation.applied", "remediation.rolling_back", "remediation.rolled_back"} <= types
    set_policy(owner, mode="manual")
