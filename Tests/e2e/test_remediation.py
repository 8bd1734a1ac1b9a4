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

from conftest import Client, assert_envelope, join_workspace, psql, seeded_moto_server
from test_scans import all_results, connect, trigger, wait_scan

WRITE_KEYS = {"access_key_id": "AKIAREMEDIATE0000001", "secret_access_key": "remediation/secret/key/00000000000000000"}
TERMINAL = ("applied", "failed", "rolled_back", "rollback_failed", "rejected", "expired", "dry_run")


@pytest.fixture(scope="module")
def rem_moto():
    """A moto of its own (fixes change it), seeded like the scan tests'."""
    yield from seeded_moto_server()


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

    # Each applied fix counts against the plan's remediation quota (metered from the events).
    deadline = time.time() + 10
    while owner.get("/quotas/balance").json()["quotas"]["remediations"]["used"] < len(CASES) and time.time() < deadline:
        time.sleep(0.2)
    assert owner.get("/quotas/balance").json()["quotas"]["remediations"]["used"] == len(CASES)
    assert owner.get("/quotas/balance").json()["quotas"]["remediations"]["reserved"] == 0

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


def test_dry_run_plans_and_changes_nothing(stack, fixable):
    from test_notifier import Receiver, verify
    owner, endpoint = fixable["owner"], fixable["endpoint"]
    receiver = Receiver()
    hook = owner.post("/webhooks/endpoints", {"url": receiver.url("/ok"), "events": ["remediation.*"]})
    assert hook.status_code == 201, hook.text
    set_policy(owner, mode="auto", auto_max_severity="critical")
    f = finding(owner, "aws.kms.key_rotation_disabled", "alias/vigil-bad-norotation")
    r = owner.post("/remediations/request", {"finding_id": f["id"], "dry_run": True})
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["status"] == "dry_run" and a["dry_run"] is True and a.get("approved_by") is None
    call = a["plan"]["calls"][0]
    assert call["operation"] == "EnableKeyRotation" and json.loads(call["body"]) == {"KeyId": f["resource_id"]}
    assert a["plan"]["current_state"] == {"rotation_enabled": False}
    assert a["plan"]["rollback_calls"][0]["operation"] == "DisableKeyRotation"
    assert "kms:EnableKeyRotation" in a["plan"]["action"]["permissions"]
    time.sleep(2)
    assert owner.get(f"/remediations/{a['id']}").json()["status"] == "dry_run"
    assert aws(endpoint, "kms").get_key_rotation_status(KeyId=f["resource_id"])["KeyRotationEnabled"] is False
    assert owner.get(f"/findings/{f['id']}").json()["status"] == "open"
    # The policy's dry_run_default applies when the request does not say.
    set_policy(owner, dry_run_default=True)
    r = owner.post("/remediations/request", {"finding_id": f["id"]})
    assert r.status_code == 201 and r.json()["status"] == "dry_run", r.text
    assert_envelope(owner.post(f"/remediations/{a['id']}/rollback"), 409, "invalid_state")
    listed = owner.get("/remediations/?status=dry_run&limit=200").json()["items"]
    assert a["id"] in {x["id"] for x in listed}
    # Subscribers are told, by a signed webhook.
    hit = receiver.wait(lambda q: json.loads(q["body"])["data"].get("action_id") == a["id"])[0]
    assert verify(hit, hook.json()["secret"]) and json.loads(hit["body"])["type"] == "remediation.planned"
    assert json.loads(hit["body"])["data"]["status"] == "dry_run"
    receiver.server.shutdown()
    owner.delete(f"/webhooks/endpoints/{hook.json()['id']}")
    set_policy(owner, mode="manual", dry_run_default=False)


def test_policy_modes_approvals_and_self_approval(stack, fixable):
    owner, endpoint = fixable["owner"], fixable["endpoint"]
    admin = join_workspace(stack, fixable["owner"], "admin")
    sg = finding(owner, "aws.ec2.sg_ssh_open_to_world", planted_name(fixable["manifest"], "aws.ec2.sg_ssh_open_to_world", None))
    kms = finding(owner, "aws.kms.key_rotation_disabled", "alias/vigil-bad-norotation")

    set_policy(owner, mode="disabled")
    assert_envelope(owner.post("/remediations/request", {"finding_id": sg["id"]}), 403, "remediation_disabled")

    # Manual: everything waits; the requester cannot approve their own fix.
    set_policy(owner, mode="manual")
    r = owner.post("/remediations/request", {"finding_id": sg["id"]})
    assert r.status_code == 201 and r.json()["status"] == "pending_approval" and r.json()["expires_at"], r.text
    pending = r.json()
    assert_envelope(owner.post("/remediations/request", {"finding_id": sg["id"]}), 409, "remediation_in_progress")
    assert pending["id"] in {x["id"] for x in owner.get("/remediations/pending").json()["items"]}
    mine = {x["id"]: x for x in owner.get("/approvals/").json()["items"]}
    theirs = {x["id"]: x for x in admin.get("/approvals/").json()["items"]}
    assert mine[pending["id"]]["can_approve"] is False and theirs[pending["id"]]["can_approve"] is True
    assert_envelope(owner.post(f"/remediations/{pending['id']}/approve", {}), 403, "self_approval_forbidden")
    time.sleep(1)
    assert owner.get(f"/remediations/{pending['id']}").json()["status"] == "pending_approval"
    r = admin.post(f"/remediations/{pending['id']}/approve", {"reason": "change window CHG-1042"})
    assert r.status_code == 200 and r.json()["status"] in ("approved", "executing", "applied"), r.text
    done = wait_action(owner, pending["id"])
    assert done["status"] == "applied" and done["decision_reason"] == "change window CHG-1042"
    assert [h["actor"] for h in done["history"]][:2] == [pending["requested_by"], done["approved_by"]]
    assert_envelope(admin.post(f"/remediations/{pending['id']}/approve", {}), 409, "invalid_state")
    assert wait_action(owner, owner.post(f"/remediations/{pending['id']}/rollback").json()["id"])["status"] == "rolled_back"

    # Auto up to medium: the medium KMS finding is approved by the policy, the high SG one waits.
    set_policy(owner, mode="auto", auto_max_severity="medium")
    sg = finding(owner, "aws.ec2.sg_ssh_open_to_world", sg["resource_name"])
    r = owner.post("/remediations/request", {"finding_id": sg["id"]})
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    high = r.json()
    r = owner.post("/remediations/request", {"finding_id": kms["id"]})
    assert r.status_code == 201 and r.json()["status"] == "approved" and r.json()["approved_by"] == "policy:auto", r.text
    medium = wait_action(owner, r.json()["id"])
    assert medium["status"] == "applied"
    assert aws(endpoint, "kms").get_key_rotation_status(KeyId=kms["resource_id"])["KeyRotationEnabled"] is True
    assert wait_action(owner, owner.post(f"/remediations/{medium['id']}/rollback").json()["id"])["status"] == "rolled_back"

    # Approver roles come from the policy; allowed actions too; self-approval when the policy allows it.
    set_policy(owner, require_approval_from_roles=["owner"])
    assert_envelope(admin.post(f"/remediations/{high['id']}/approve", {}), 403, "forbidden")
    set_policy(owner, allow_self_approval=True)
    r = owner.post(f"/remediations/{high['id']}/approve", {})
    assert r.status_code == 200, r.text
    assert wait_action(owner, high["id"])["status"] == "applied"
    assert wait_action(owner, owner.post(f"/remediations/{high['id']}/rollback").json()["id"])["status"] == "rolled_back"
    set_policy(owner, allowed_actions=["s3.block_public_access"])
    kms = finding(owner, "aws.kms.key_rotation_disabled", "alias/vigil-bad-norotation")
    assert_envelope(owner.post("/remediations/request", {"finding_id": kms["id"]}), 403, "action_not_allowed")
    set_policy(owner, mode="manual", allowed_actions=[], require_approval_from_roles=["owner", "admin"], allow_self_approval=False)


def test_rejection_and_expiry(stack, fixable):
    owner = fixable["owner"]
    admin = join_workspace(stack, fixable["owner"], "admin")
    set_policy(owner, mode="manual")
    f = finding(owner, "aws.cloudtrail.log_file_validation_disabled", "vigil-bad-trail")
    a = owner.post("/remediations/request", {"finding_id": f["id"]}).json()
    assert a["status"] == "pending_approval"
    assert_envelope(admin.post(f"/remediations/{a['id']}/reject", {}), 422, "validation_error")
    r = admin.post(f"/remediations/{a['id']}/reject", {"reason": "trail is managed by the org"})
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["decision_reason"] == "trail is managed by the org", r.text
    assert_envelope(admin.post(f"/remediations/{a['id']}/approve", {}), 409, "invalid_state")
    assert_envelope(admin.post(f"/remediations/{a['id']}/rollback"), 409, "invalid_state")
    assert stack.bus.wait_for(lambda b: b["type"] == "remediation.rejected" and b["data"]["action_id"] == a["id"], "vigil.events.remediation.")

    # A request nobody decides on expires (the sweeper runs every second in tests).
    b = owner.post("/remediations/request", {"finding_id": f["id"]}).json()
    assert b["status"] == "pending_approval"
    psql(stack, f"UPDATE remediation.actions SET expires_at = now() - interval '1 second' WHERE id = '{b['id']}'")
    assert wait_action(owner, b["id"], timeout=15)["status"] == "expired"
    assert_envelope(admin.post(f"/remediations/{b['id']}/approve", {}), 409, "invalid_state")
    assert b["id"] not in {x["id"] for x in owner.get("/approvals/").json()["items"]}


def test_remediation_credentials(stack, fixable, strict_moto):
    owner, conn = fixable["owner"], fixable["conn"]
    set_policy(owner, mode="manual", allow_self_approval=True)
    f = finding(owner, "aws.rds.instance_publicly_accessible", "vigil-bad-db")
    # Approved after the credentials were removed: the executor fails it cleanly, saying why.
    pending = owner.post("/remediations/request", {"finding_id": f["id"]}).json()
    r = owner.delete(f"/connections/{conn}/remediation-credentials")
    assert r.status_code == 200 and r.json()["auto_fix"] is False, r.text
    assert_envelope(owner.delete(f"/connections/{conn}/remediation-credentials"), 404, "not_found")
    assert_envelope(owner.post("/remediations/request", {"finding_id": finding(owner, "aws.rds.snapshot_public", "vigil-bad-db-snap")["id"]}),
                    409, "remediation_credentials_missing")
    owner.post(f"/remediations/{pending['id']}/approve", {})
    failed = wait_action(owner, pending["id"])
    assert failed["status"] == "failed" and "no remediation credentials" in failed["error"], failed
    assert_envelope(owner.post(f"/remediations/{pending['id']}/rollback"), 409, "nothing_to_roll_back")

    # Bad shapes, refused keys, unknown connections.
    assert_envelope(owner.post(f"/connections/{conn}/remediation-credentials", {"access_key_id": "nope"}), 422, "validation_error")
    assert_envelope(owner.post(f"/connections/{conn}/remediation-credentials", {"role_arn": "arn:aws:iam::12:role/x"}), 422, "validation_error")
    assert_envelope(owner.post("/connections/00000000-0000-4000-8000-000000000000/remediation-credentials", WRITE_KEYS), 404)
    assert_envelope(owner.post("/connections/not-a-uuid/remediation-credentials", WRITE_KEYS), 404)
    strict = connect(owner, strict_moto, regions=("us-east-1",), **WRITE_KEYS)
    assert_envelope(owner.post(f"/connections/{strict}/remediation-credentials", WRITE_KEYS), 422, "credentials_rejected")

    # Back on: the same request works again; the secret appears nowhere.
    r = owner.post(f"/connections/{conn}/remediation-credentials", {"credentials": WRITE_KEYS})
    assert r.status_code == 200 and r.json()["credentials"]["access_key_id"] == "AKIA…0001", r.text
    again = owner.post("/remediations/request", {"finding_id": f["id"]}).json()
    owner.post(f"/remediations/{again['id']}/approve", {})
    assert wait_action(owner, again["id"])["status"] == "applied"
    assert wait_action(owner, owner.post(f"/remediations/{again['id']}/rollback").json()["id"])["status"] == "rolled_back"
    secret = WRITE_KEYS["secret_access_key"]
    assert secret not in stack.log("remediation") and secret not in stack.log("gateway")
    assert all(secret not in json.dumps(b) for _, _, b in stack.bus.received("vigil."))
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "-d", "vigil", "--data-only"],
                          capture_output=True, text=True, check=True).stdout
    assert secret not in dump
    set_policy(owner, allow_self_approval=False)


def test_executor_killed_mid_apply_resumes_without_repeating(stack, fixable):
    owner, conn, endpoint = fixable["owner"], fixable["conn"], fixable["endpoint"]
    ec2 = aws(endpoint, "ec2")
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=7, VolumeType="gp3")["VolumeId"]
    scanned(owner, conn)
    f = finding(owner, "aws.ebs.volume_unattached", vol)
    stack.restart("remediation", VIGIL_REMEDIATION_STEP_DELAY_MS="5000")
    try:
        set_policy(owner, mode="auto", auto_max_severity="critical")
        a = owner.post("/remediations/request", {"finding_id": f["id"]}).json()
        assert a["status"] == "approved", a
        # Kill it right after the snapshot (step 1 of 2) is recorded.
        deadline = time.time() + 30
        tagged = []
        while time.time() < deadline and not tagged:
            tagged = ec2.describe_snapshots(Filters=[{"Name": "tag:vigil:remediation", "Values": [a["id"]]}])["Snapshots"]
            time.sleep(0.2)
        assert tagged, "the executor never took the snapshot"
        time.sleep(1.0)
        stack.procs["remediation"].send_signal(signal.SIGKILL)
        stack.procs["remediation"].wait(10)
        # With no executor up, the record shows where it stopped: before-state kept, one of two calls done.
        mid = psql(stack, f"SELECT status, steps_done, before_state->>'state' FROM remediation.actions WHERE id = '{a['id']}'")
        assert mid == "executing|1|available", mid
        stack.restart("remediation")
        done = wait_action(owner, a["id"], timeout=60)
        assert done["status"] == "applied" and done["attempts"] == 2, done
        snaps = ec2.describe_snapshots(Filters=[{"Name": "tag:vigil:remediation", "Values": [a["id"]]}])["Snapshots"]
        assert len(snaps) == 1, "the snapshot step ran twice"
        assert not ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vol]}])["Volumes"]
        back = wait_action(owner, owner.post(f"/remediations/{a['id']}/rollback").json()["id"])
        assert back["status"] == "rolled_back" and back["rollback_resource_id"].endswith(
            ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snaps[0]["SnapshotId"]]}])["Volumes"][0]["VolumeId"])
    finally:
        stack.restart("remediation")
        set_policy(owner, mode="manual")


def test_isolation_roles_and_bad_input(stack, fixable, signup):
    owner, conn = fixable["owner"], fixable["conn"]
    set_policy(owner, mode="manual")
    f = finding(owner, "aws.sns.topic_policy_public", "vigil-bad-topic")
    a = owner.post("/remediations/request", {"finding_id": f["id"]}).json()
    assert a["status"] == "pending_approval"

    other, _, _ = signup("rem-other")
    assert_envelope(other.get(f"/remediations/{a['id']}"), 404, "not_found")
    assert_envelope(other.post(f"/remediations/{a['id']}/approve", {}), 404, "not_found")
    assert_envelope(other.post(f"/remediations/{a['id']}/reject", {"reason": "mine now"}), 404, "not_found")
    assert_envelope(other.post(f"/remediations/{a['id']}/rollback"), 404, "not_found")
    assert_envelope(other.post("/remediations/request", {"finding_id": f["id"]}), 404)
    assert_envelope(other.post(f"/connections/{conn}/remediation-credentials", WRITE_KEYS), 404)
    assert_envelope(other.delete(f"/connections/{conn}/remediation-credentials"), 404)
    assert other.get("/remediations/").json()["items"] == [] and other.get("/approvals/").json()["items"] == []
    assert other.get("/remediations/pending").json()["items"] == []

    viewer = join_workspace(stack, fixable["owner"], "viewer")
    assert_envelope(viewer.post("/remediations/request", {"finding_id": f["id"]}), 403)
    assert_envelope(viewer.post(f"/remediations/{a['id']}/approve", {}), 403)
    assert_envelope(viewer.patch("/tenants/current/remediation-policy", {"mode": "auto"}), 403)
    assert viewer.get(f"/remediations/{a['id']}").status_code == 200
    analyst = join_workspace(stack, fixable["owner"], "analyst")
    assert_envelope(analyst.post(f"/remediations/{a['id']}/approve", {}), 403, "forbidden")
    assert_envelope(analyst.post(f"/connections/{conn}/remediation-credentials", WRITE_KEYS), 403)

    bad = [
        ({}, "body.finding_id"),
        ({"finding_id": "nope"}, "body.finding_id"),
        ({"finding_id": f["id"], "action": "s3.block_public_access"}, "body.action"),
        ({"finding_id": f["id"], "action": "rm -rf"}, "body.action"),
        ({"finding_id": f["id"], "parameters": {"x": 1}}, "body.parameters.x"),
        ({"finding_id": f["id"], "dry_run": "yes"}, None),
    ]
    for body, path in bad:
        e = assert_envelope(owner.post("/remediations/request", body), 422)
        if path:
            assert path in {i["path"] for i in e.get("issues", [])} or path in e["message"], (body, e)
    sg = finding(owner, "aws.ec2.sg_ssh_open_to_world", planted_name(fixable["manifest"], "aws.ec2.sg_ssh_open_to_world", None))
    assert_envelope(owner.post("/remediations/request", {"finding_id": sg["id"], "parameters": {"ports": ["x"]}}), 422)
    assert_envelope(owner.post("/remediations/request", {"finding_id": "00000000-0000-4000-8000-000000000000"}), 404)
    no_fix = owner.get("/findings/?rule_code=aws.s3.bucket_access_logging_disabled&status=open&limit=1").json()["items"][0]
    assert_envelope(owner.post("/remediations/request", {"finding_id": no_fix["id"]}), 422, "no_fix_action")
    assert_envelope(owner.get("/remediations/?status=bogus"), 422)
    assert_envelope(owner.get("/remediations/?limit=0"), 422)
    assert_envelope(owner.get("/remediations/?cursor=zzz"), 422)
    assert_envelope(owner.get("/remediations/not-a-uuid"), 404)
    assert_envelope(owner.get("/remediations/00000000-0000-4000-8000-000000000000"), 404)
    assert_envelope(owner.post("/remediations/00000000-0000-4000-8000-000000000000/approve", {}), 404)
    for patch, path in [({"mode": "yolo"}, "body.mode"), ({"auto_max_severity": "extreme"}, "body.auto_max_severity"),
                        ({"allowed_actions": ["nope"]}, "body.allowed_actions"), ({"require_approval_from_roles": ["viewer"]}, "body.require_approval_from_roles"),
                        ({"approval_ttl_hours": 0}, "body.approval_ttl_hours"), ({"max_actions_per_day": -1}, "body.max_actions_per_day")]:
        e = assert_envelope(owner.patch("/tenants/current/remediation-policy", patch), 422)
        assert path in {i["path"] for i in e["issues"]}, e
    # Daily cap.
    set_policy(owner, max_actions_per_day=0)
    other_finding = finding(owner, "aws.sqs.queue_policy_public", "vigil-bad-queue")
    assert_envelope(owner.post("/remediations/request", {"finding_id": other_finding["id"]}), 429, "remediation_daily_limit")
    set_policy(owner, max_actions_per_day=50)
    r = owner.post(f"/remediations/{a['id']}/reject", {"reason": "cleanup"})
    assert r.status_code == 200
    # The plan's fix quota: the free plan has none; the refusal says which quota and its figures.
    t = owner.get("/auth/me").json()["workspace"]["id"]
    psql(stack, f"UPDATE billing.subscriptions SET plan = 'free', status = 'active', trial_end = NULL WHERE tenant_id = '{t}'")

    def past_rate(send):
        # The free plan's request rate (120 a minute) applies at once to the requests this test made this minute.
        r = send()
        if r.status_code == 429 and r.json().get("quota", {}).get("name") == "api_requests_per_minute":
            time.sleep(61)
            r = send()
        return r

    r = past_rate(lambda: owner.post("/remediations/request", {"finding_id": other_finding["id"]}))
    e = assert_envelope(r, 403, "quota_exceeded")
    assert e["quota"]["name"] == "remediations" and e["quota"]["limit"] == 0 and e["quota"]["resets_at"]
    r = past_rate(lambda: owner.post("/remediations/request", {"finding_id": other_finding["id"], "dry_run": True}))
    assert r.status_code == 201, "a dry run changes nothing and uses no quota"
    psql(stack, f"UPDATE billing.subscriptions SET plan = 'pro', status = 'trialing' WHERE tenant_id = '{t}'")
