"""Operations routes for the platform workspace's owners and admins: JetStream streams and consumers with
pending, redelivered and ack-floor lag; every replica of every service from $SRV.STATS; a synthetic end-to-end
check. Anyone else — another workspace's owner, a viewer of the platform workspace — is refused."""
from conftest import assert_envelope, join_workspace


def test_ops_queues_services_and_smoke(stack, signup):
    owner, body, _ = signup("platform")
    slug = body["workspace"]["slug"]
    stack.restart("scan-orchestrator", VIGIL_PLATFORM_WORKSPACE=slug)
    try:
        q = owner.get("/ops/queues")
        assert q.status_code == 200, q.text
        q = q.json()
        assert {s["name"] for s in q["streams"]} == {"VIGIL_EVENTS", "VIGIL_JOBS", "VIGIL_DEAD"} and all(s["replicas"] >= 1 for s in q["streams"])
        consumers = {c["consumer"]: c for c in q["consumers"]}
        assert {"scan-workers-aws", "scan-workers-repo", "repo-fix-workers", "notifier-email"} <= set(consumers), sorted(consumers)
        assert all(c["ack_floor_lag"] >= 0 and c["pending"] >= 0 for c in q["consumers"])

        svc = owner.get("/ops/services").json()
        assert svc["services"]["identity"] == 2 and svc["services"]["scan-orchestrator"] >= 1, svc["services"]
        identity = [r for r in svc["replicas"] if r["service"] == "identity"]
        assert all(r["version"] and r["uptime_seconds"] >= 0 for r in identity) and any(r["requests"] > 0 for r in identity), identity
        assert any(e["name"] and e["average_ms"] >= 0 for r in identity for e in r["endpoints"])

        smoke = owner.post("/ops/smoke")
        assert smoke.status_code == 200 and smoke.json()["ok"] is True, smoke.text
        names = {c["name"] for c in smoke.json()["checks"]}
        assert {"service identity", "database of findings", "stream VIGIL_JOBS"} <= names

        other, _, _ = signup("notplatform")
        for call in (lambda c: c.get("/ops/queues"), lambda c: c.get("/ops/services"), lambda c: c.post("/ops/smoke")):
            assert_envelope(call(other), 403)
        viewer = join_workspace(stack, owner, "viewer")
        assert_envelope(viewer.get("/ops/queues"), 403)
    finally:
        stack.restart("scan-orchestrator")


def test_ops_failures_list_and_retry_dead_letters_deliveries_and_stuck_outbox(stack, signup):
    """What did not get through: a job its consumer gave up on (dead-lettered with subject, consumer and
    reason), a webhook delivery the endpoint refused, an outbox row JetStream would not take (and which
    does not hold back the rows after it). Retry publishes the dead letter again on its subject and
    queues the delivery again."""
    import json
    import time
    import uuid
    from conftest import psql
    from test_notifier import Receiver
    owner, body, _ = signup("platform-failures")
    slug, tenant = body["workspace"]["slug"], body["workspace"]["id"]
    receiver = Receiver()
    stack.restart("scan-orchestrator", VIGIL_PLATFORM_WORKSPACE=slug)
    try:
        # A job the findings service cannot use (no head): dropped by its consumer, kept as a dead letter.
        marker = str(uuid.uuid4())
        stack.bus.publish_event("vigil.jobs.findings.results", {"id": marker, "type": "scan.results", "tenant_id": tenant,
                                                                "data": {"scan_id": str(uuid.uuid4()), "connection_id": str(uuid.uuid4()),
                                                                         "provider": "aws", "service": "s3", "results": []}})  # no region
        # A delivery the endpoint refuses (4xx: not retried).
        ep = owner.post("/webhooks/endpoints", {"url": receiver.url("/bad"), "events": ["apikey.created"]}).json()
        owner.post("/api-keys/", {"name": "to-fail"})
        receiver.wait(lambda q: q["path"] == "/bad")
        # An outbox row of the billing service that JetStream refuses (a subject no stream takes), then a good one after it.
        bad_row, good_row = str(uuid.uuid4()), str(uuid.uuid4())
        psql(stack, f"INSERT INTO billing.outbox (id, subject, payload, created_at) VALUES ('{bad_row}', 'vigil.nowhere.test', '{{}}', "
                    f"now() - interval '1 minute')")
        psql(stack, f"INSERT INTO billing.outbox (id, subject, payload) VALUES ('{good_row}', 'vigil.events.billing.usage_recorded', "
                    f"'{{\"id\":\"{good_row}\",\"type\":\"billing.usage_recorded\",\"data\":{{}}}}')")

        def listed():
            r = owner.get("/ops/failures")
            assert r.status_code == 200, r.text
            return r.json()
        deadline, f = time.time() + 20, {}
        while time.time() < deadline:
            f = listed()
            kinds = {(i["kind"], i.get("consumer") or i.get("service")) for i in f["items"]}
            if {("dead_letter", "findings-results"), ("webhook_delivery", "notifier"), ("outbox", "billing")} <= kinds:
                break
            time.sleep(0.5)
        assert f["unavailable"] == [], f
        dead = [i for i in f["items"] if i["kind"] == "dead_letter" and i["subject"] == "vigil.jobs.findings.results"
                and i.get("tenant_id") == tenant]
        assert dead and dead[0]["reason"] == "dropped" and dead[0]["stream"] == "VIGIL_JOBS" and dead[0]["retryable"], f
        [delivery] = [i for i in f["items"] if i["kind"] == "webhook_delivery" and i.get("tenant_id") == tenant]
        assert delivery["reason"] == "HTTP 400" and delivery["subject"] == "apikey.created"
        [stuck] = [i for i in f["items"] if i["kind"] == "outbox" and i["id"] == f"outbox-billing-{bad_row}"]
        assert stuck["subject"] == "vigil.nowhere.test" and not stuck["retryable"]
        # The row after the refused one went out.
        deadline = time.time() + 10
        while time.time() < deadline and psql(stack, f"SELECT published_at IS NOT NULL FROM billing.outbox WHERE id = '{good_row}'") != "t":
            time.sleep(0.2)
        assert psql(stack, f"SELECT published_at IS NOT NULL FROM billing.outbox WHERE id = '{good_row}'") == "t"

        # Retry: the dead letter goes back on its subject (and, dropped again, becomes a new dead letter).
        before = len([m for m in stack.bus.received("vigil.jobs.findings.results") if m[2]["id"] == marker])
        r = owner.post(f"/ops/failures/{dead[0]['id']}/retry")
        assert r.status_code == 200 and r.json()["retried"] is True, r.text
        deadline = time.time() + 10
        while time.time() < deadline and len([m for m in stack.bus.received("vigil.jobs.findings.results") if m[2]["id"] == marker]) == before:
            time.sleep(0.1)
        assert len([m for m in stack.bus.received("vigil.jobs.findings.results") if m[2]["id"] == marker]) == before + 1
        assert dead[0]["id"] not in {i["id"] for i in listed()["items"]}
        assert_envelope(owner.post(f"/ops/failures/{dead[0]['id']}/retry"), 404)
        # Retry of the delivery: sent again.
        sent = len([q for q in receiver.requests if q["path"] == "/bad"])
        assert owner.post(f"/ops/failures/{delivery['id']}/retry").json()["retried"] is True
        receiver.wait(lambda q: q["path"] == "/bad", count=sent + 1)
        assert_envelope(owner.post(f"/ops/failures/outbox-billing-{bad_row}/retry"), 409)
        assert_envelope(owner.post("/ops/failures/nonsense/retry"), 422)
        assert_envelope(owner.post(f"/ops/failures/delivery-{uuid.uuid4()}/retry"), 404)
        other, _, _ = signup("notplatform-failures")
        assert_envelope(other.get("/ops/failures"), 403)
        assert_envelope(other.post(f"/ops/failures/{delivery['id']}/retry"), 403)
    finally:
        psql(stack, f"DELETE FROM billing.outbox WHERE subject = 'vigil.nowhere.test'")
        receiver.server.shutdown()
        stack.restart("scan-orchestrator")
