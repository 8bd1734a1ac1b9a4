"""Scans end to end: trigger → JetStream job → workers collect moto's seeded account → results,
events and counts; cancel, partial failure, bad credentials, SIGKILL of a worker, concurrency,
validation and tenant isolation."""
import os
import signal
import subprocess
import time

from conftest import Client, assert_envelope

SEVERITIES = ["critical", "high", "medium", "low", "info"]


def connect(client, endpoint, manifest=None, regions=("us-east-1", "us-west-2"), **creds):
    creds = creds or {"access_key_id": manifest["access_key_id"], "secret_access_key": manifest["secret_access_key"]}
    r = client.post("/connections/", {"name": "seeded", "provider": "aws", "credentials": creds,
                                      "settings": {"regions": list(regions), "endpoint_url": endpoint}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def trigger(client, conn_id, **kw):
    r = client.post("/scans/trigger", {"connection_id": conn_id, **kw})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()["id"]


def wait_scan(client, scan_id, statuses=("completed", "failed", "canceled"), timeout=90, seen=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.get(f"/scans/{scan_id}")
        if r.status_code == 200:
            if seen is not None:
                seen.append(r.json()["status"])
            if r.json()["status"] in statuses:
                return r.json()
        time.sleep(0.1)
    raise AssertionError(f"scan {scan_id} did not reach {statuses}: {client.get(f'/scans/{scan_id}').text}")


def all_results(client, scan_id, **filters):
    items, cursor = [], None
    for _ in range(100):
        q = "&".join([f"limit=200"] + [f"{k}={v}" for k, v in filters.items()] + ([f"cursor={cursor}"] if cursor else []))
        page = client.get(f"/scans/{scan_id}/results?{q}")
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("results did not end")


def test_scan_finds_planted_issues_and_spares_twins(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, body, _ = signup("scan")
    conn = connect(owner, endpoint, manifest)
    scan_id = trigger(owner, conn)
    percents = []
    deadline = time.time() + 90
    while time.time() < deadline:
        p = owner.get(f"/scans/{scan_id}/progress").json()
        percents.append(p["percent_complete"])
        if p["status"] in ("completed", "failed", "canceled"):
            break
        time.sleep(0.05)
    scan = owner.get(f"/scans/{scan_id}").json()
    assert scan["status"] == "completed" and scan["complete"] is True, scan
    assert scan.get("error") is None and scan["account_id"] == manifest["account"] and scan["attempts"] == 1
    assert percents == sorted(percents) and percents[-1] == 100
    progress = owner.get(f"/scans/{scan_id}/progress").json()
    assert progress["phase"] == "completed" and progress["parts_done"] == progress["parts_total"] == 2 + 14 * 2
    assert all(p["status"] == "completed" for p in progress["parts"])

    results = all_results(owner, scan_id)
    fails = [r for r in results if r["status"] == "FAIL"]
    assert len(results) == scan["checks_evaluated"] and len({r["fingerprint"] for r in results}) == len(results)
    assert scan["findings_count"] == {s: sum(1 for r in fails if r["severity"] == s) for s in SEVERITIES}
    assert scan["resources_scanned"] == sum(p["resources"] for p in progress["parts"]) >= 80
    assert abs(scan["estimated_monthly_savings"] - sum(r.get("estimated_monthly_savings") or 0 for r in fails)) < 0.01
    assert scan["estimated_monthly_savings"] > 0
    failing = {(r["rule_id"], r["resource_name"]) for r in fails}
    missing = [p for p in manifest["planted"] if tuple(p) not in failing]
    assert not missing, missing
    on_twins = [(r["rule_id"], r["resource_name"]) for r in fails if r["resource_name"] in manifest["twins"]]
    assert not on_twins, on_twins
    assert len(all_results(owner, scan_id, status="FAIL", severity="critical")) == scan["findings_count"]["critical"]
    one = all_results(owner, scan_id, rule_id="aws.s3.bucket_policy_public")
    assert {r["resource_name"] for r in one if r["status"] == "FAIL"} == {"vigil-bad-public-policy"}
    assert one and all(r["rule_id"] == "aws.s3.bucket_policy_public" for r in one)

    # The results reached the bus in batches that add up to the scan; the terminal event says so.
    done = stack.bus.wait_for(lambda b: b["data"]["scan_id"] == scan_id, "vigil.events.scan.completed", 10)
    assert done["data"]["status"] == "completed" and done["data"]["complete"] is True
    assert done["data"]["findings_count"] == scan["findings_count"] and done["tenant_id"] == body["workspace"]["id"]
    batches = [b["data"] for _, _, b in stack.bus.received("vigil.jobs.findings.results") if b["data"].get("scan_id") == scan_id]
    on_bus = [r for b in batches for r in b["results"]]
    assert len(on_bus) == len(results) and {r["fingerprint"] for r in on_bus} == {r["fingerprint"] for r in results}
    assert all(b["account_id"] == manifest["account"] and 1 <= b["batch"] <= b["batches"] for b in batches)
    for subject in ("vigil.events.scan.queued", "vigil.events.scan.started"):
        stack.bus.wait_for(lambda b: b["data"]["scan_id"] == scan_id, subject, 5)

    # Fingerprints are stable across scans of the same connection.
    again = trigger(owner, conn, services=["s3"])
    wait_scan(owner, again)
    s3_prints = {r["fingerprint"] for r in all_results(owner, again)}
    assert s3_prints and s3_prints <= {r["fingerprint"] for r in results}
    listed = owner.get(f"/scans/?connection_id={conn}&status=completed").json()
    assert [s["id"] for s in listed["items"]] == [again, scan_id] and listed["total"] == 2
    assert owner.get(f"/connections/{conn}").json()["last_scan_at"] is not None


def test_role_assumption_with_keys_and_with_platform_identity(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("role")
    role = f"arn:aws:iam::{manifest['account']}:role/vigil-twin-role-xacct"
    with_keys = connect(owner, endpoint, regions=["us-east-1"], role_arn=role, external_id="vigil-7f3a",
                        access_key_id=manifest["access_key_id"], secret_access_key=manifest["secret_access_key"])
    platform = connect(owner, endpoint, regions=["us-east-1"], role_arn=role, external_id="vigil-7f3a")
    for conn in (with_keys, platform):
        t = owner.post(f"/connections/{conn}/test").json()
        assert t["ok"] is True and "assumed-role/vigil-twin-role-xacct" in t["arn"], t
        scan = wait_scan(owner, trigger(owner, conn, services=["iam"]))
        assert scan["status"] == "completed" and scan["resources_scanned"] > 5
    masked = owner.get(f"/connections/{platform}").json()["credentials"]
    assert masked == {"role_arn": role, "external_id": "****"}


def test_partial_failure_keeps_scanning(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("partial")
    conn = connect(owner, endpoint, manifest)
    # A region the endpoint cannot serve: its parts fail, the others complete, the scan goes on.
    scan = wait_scan(owner, trigger(owner, conn, regions=["us-east-1", "xx-fake-1"], services=["ec2", "kms"]))
    assert scan["status"] == "completed" and scan["complete"] is False
    assert "2 of 4 parts failed" in scan["error"]
    parts = {(p["service"], p["region"]): p for p in owner.get(f"/scans/{scan['id']}/progress").json()["parts"]}
    assert parts[("ec2", "us-east-1")]["status"] == "completed" and parts[("kms", "us-east-1")]["status"] == "completed"
    assert parts[("ec2", "xx-fake-1")]["status"] == "failed" and parts[("ec2", "xx-fake-1")]["error"]
    assert scan["resources_scanned"] == parts[("ec2", "us-east-1")]["resources"] + parts[("kms", "us-east-1")]["resources"]
    done = stack.bus.wait_for(lambda b: b["data"]["scan_id"] == scan["id"], "vigil.events.scan.completed", 10)
    assert done["data"]["complete"] is False


def test_bad_credentials_and_unreachable_endpoint_fail_clearly(stack, signup, strict_moto):
    owner, _, _ = signup("badcreds")
    conn = connect(owner, strict_moto, regions=["us-east-1"], access_key_id="AKIAUNKNOWNKEY000001",
                   secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    t = owner.post(f"/connections/{conn}/test").json()
    assert t["ok"] is False and "refused the credentials" in t["message"]
    scan = wait_scan(owner, trigger(owner, conn))
    assert scan["status"] == "failed" and "AWS refused the credentials (InvalidClientTokenId)" in scan["error"], scan
    assert scan["attempts"] == 1 and scan["complete"] is False
    # An endpoint nobody answers: retried, then failed with a readable error, never stuck running.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    conn = connect(owner, f"http://127.0.0.1:{dead}", regions=["us-east-1"], access_key_id="AKIAIOSFODNN7EXAMPLE",
                   secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    scan = wait_scan(owner, trigger(owner, conn), timeout=60)
    assert scan["status"] == "failed" and "after 3 attempts" in scan["error"] and "could not reach" in scan["error"], scan


def slow_scan(owner, endpoint, manifest):
    """A scan that stays running for a while: many regions the endpoint answers only with errors
    (each call is retried with backoff)."""
    conn = connect(owner, endpoint, manifest)
    regions = ["us-east-1"] + [f"xx-slow{chr(97 + i)}-1" for i in range(12)]
    return conn, trigger(owner, conn, regions=regions, services=["ec2", "kms", "rds", "sqs", "sns", "lambda"])


def test_cancel_running_and_queued_scans(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("cancel")
    conn, scan_id = slow_scan(owner, endpoint, manifest)
    wait_scan(owner, scan_id, ("running",), timeout=20)
    r = owner.post(f"/scans/{scan_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled" and "canceled by" in r.json()["error"]
    time.sleep(2.5)
    after = owner.get(f"/scans/{scan_id}").json()
    assert after["status"] == "canceled"
    assert owner.get(f"/scans/{scan_id}/progress").json()["phase"] == "canceled"
    stack.bus.wait_for(lambda b: b["data"]["scan_id"] == scan_id and b["data"]["status"] == "canceled", "vigil.events.scan.completed", 5)
    assert_envelope(owner.post(f"/scans/{scan_id}/cancel"), 409, "scan_finished")
    # A queued scan is canceled before any worker runs it.
    a, b, c = (trigger(owner, conn, regions=["xx-slow-1", "xx-slow-2"], services=["ec2", "kms", "rds"]) for _ in range(3))
    queued = c if owner.get(f"/scans/{c}").json()["status"] == "queued" else None
    # Cancel the queued one first: while a and b run, no slot frees up for it.
    for s in (c, a, b):
        owner.post(f"/scans/{s}/cancel")
    for s in (a, b, c):
        assert wait_scan(owner, s)["status"] == "canceled"
    if queued:
        assert owner.get(f"/scans/{queued}").json().get("started_at") is None


def test_tenant_concurrency_is_bounded_and_delete_cancels(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("concurrency")
    conn, first = slow_scan(owner, endpoint, manifest)
    regions = ["us-east-1"] + [f"xx-slow{chr(97 + i)}-1" for i in range(12)]
    others = [trigger(owner, conn, regions=regions, services=["ec2", "kms", "rds"]) for _ in range(2)]
    ids = [first] + others
    max_running, saw_queued = 0, False
    deadline = time.time() + 4
    while time.time() < deadline:
        statuses = [owner.get(f"/scans/{s}").json()["status"] for s in ids]
        max_running = max(max_running, statuses.count("running"))
        saw_queued = saw_queued or (statuses.count("running") == 2 and "queued" in statuses)
        time.sleep(0.1)
    assert max_running == 2, "the workspace limit is 2 running scans"
    assert saw_queued, "the third scan waits queued while two run"
    # Deleting the connection cancels its running and queued scans.
    assert owner.delete(f"/connections/{conn}").status_code == 204
    for s in ids:
        scan = owner.get(f"/scans/{s}").json()
        assert scan["status"] == "canceled" and scan["error"] == "the connection was deleted"


def test_sigkill_of_a_worker_mid_scan_loses_and_duplicates_nothing(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("sigkill")
    conn = connect(owner, endpoint, manifest)
    reference = wait_scan(owner, trigger(owner, conn))
    assert reference["status"] == "completed"
    # One worker, parts one at a time, so the kill lands mid-scan.
    stack.procs["scan-orchestrator"].send_signal(signal.SIGTERM)
    stack.procs["scan-orchestrator"].wait(15)
    stack.spawn("scan-orchestrator", VIGIL_SCAN_PART_CONCURRENCY="1")
    deadline = time.time() + 30
    while time.time() < deadline and owner.get(f"/scans/?limit=1").status_code != 200:
        time.sleep(0.2)
    scan_id = trigger(owner, conn)
    deadline = time.time() + 60
    while time.time() < deadline:
        p = owner.get(f"/scans/{scan_id}/progress").json()
        if p["status"] == "running" and p["parts_total"] and 3 <= p["parts_done"] < p["parts_total"] - 3:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("scan never got mid-way")
    stack.procs["scan-orchestrator"].send_signal(signal.SIGKILL)
    stack.procs["scan-orchestrator"].wait(10)
    stack.spawn("scan-orchestrator")
    scan = wait_scan(owner, scan_id, timeout=90)
    assert scan["status"] == "completed" and scan["complete"] is True and scan["attempts"] == 2, scan
    for k in ("resources_scanned", "checks_evaluated", "findings_count", "estimated_monthly_savings"):
        assert scan[k] == reference[k], k
    results = all_results(owner, scan_id)
    assert len(results) == reference["checks_evaluated"] == len({r["fingerprint"] for r in results})
    # The bus recorder is a plain subscriber: it also sees a re-publish that JetStream drops as a
    # duplicate (same Nats-Msg-Id = event id, e.g. when the relay died after publishing). Stream
    # consumers see each event id once, so count per event id.
    def batches():
        by_id = {b["id"]: b["data"] for _, _, b in stack.bus.received("vigil.jobs.findings.results") if b["data"].get("scan_id") == scan_id}
        return list(by_id.values())
    deadline = time.time() + 10
    while time.time() < deadline and sum(len(b["results"]) for b in batches()) < len(results):
        time.sleep(0.2)
    fingerprints = [r["fingerprint"] for b in batches() for r in b["results"]]
    assert len(fingerprints) == len(set(fingerprints)) == len(results), "results on the bus lost or duplicated"


def test_scan_routes_validate_and_isolate(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("scanval")
    other, _, _ = signup("scanother")
    conn = connect(owner, endpoint, manifest, regions=["us-east-1"])
    for body, path in [({}, "body.connection_id"), ({"connection_id": "nope"}, "body.connection_id"),
                       ({"connection_id": conn, "services": ["s3", "mainframe"]}, "body.services"),
                       ({"connection_id": conn, "services": []}, "body.services"),
                       ({"connection_id": conn, "regions": ["moon-1"]}, "body.regions"),
                       ({"connection_id": conn, "regions": []}, "body.regions")]:
        b = assert_envelope(owner.post("/scans/trigger", body), 422)
        assert path in {i["path"] for i in b["issues"]}, (body, b)
    assert_envelope(owner.post("/scans/trigger", {"connection_id": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"}), 404)
    assert_envelope(owner.post("/scans/trigger", raw=b"{not json", headers={"content-type": "application/json"}), 400)
    assert_envelope(owner.get("/scans/?status=exploded"), 422)
    assert_envelope(owner.get("/scans/?connection_id=zzz"), 422)
    assert_envelope(owner.get("/scans/?limit=0"), 422)
    assert_envelope(owner.get("/scans/not-a-uuid"), 404)

    scan_id = trigger(owner, conn, services=["sqs"])
    scan = wait_scan(owner, scan_id)
    assert_envelope(owner.get(f"/scans/{scan_id}/results?status=MAYBE"), 422)
    assert_envelope(owner.get(f"/scans/{scan_id}/results?severity=urgent"), 422)
    # Another workspace sees none of it.
    for method, path in [("GET", f"/scans/{scan_id}"), ("GET", f"/scans/{scan_id}/progress"), ("POST", f"/scans/{scan_id}/cancel"),
                         ("GET", f"/scans/{scan_id}/results")]:
        assert_envelope(other.call(method, path), 404)
    assert_envelope(other.post("/scans/trigger", {"connection_id": conn}), 404)
    assert scan_id not in other.get("/scans/").text
    # Viewers read, analysts trigger.
    key = owner.post("/api-keys/", {"name": "ro", "scopes": ["read"], "role": "viewer"}).json()["key"]
    viewer = Client(stack.url, api_key=key)
    assert viewer.get(f"/scans/{scan_id}").json()["id"] == scan_id
    assert_envelope(viewer.post("/scans/trigger", {"connection_id": conn}), 403)
    assert_envelope(viewer.post(f"/scans/{scan_id}/cancel"), 403)
    assert scan["status"] == "completed"


def test_no_plaintext_credentials_anywhere_after_scans(stack, seeded_moto):
    _, manifest = seeded_moto
    secret = manifest["secret_access_key"]
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "-d", "vigil", "--data-only"],
                          capture_output=True, text=True, check=True).stdout
    assert "scan_results" in dump or "scans" in dump
    for needle in (secret, secret.replace("/", "\\/"), "platform/secret/key"):
        assert needle not in dump
        for name in stack.procs:
            assert needle not in stack.log(name), name
        for _, _, body in stack.bus.received("vigil."):
            assert needle not in str(body)
