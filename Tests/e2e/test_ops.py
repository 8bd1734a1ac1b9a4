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
        assert {s["name"] for s in q["streams"]} == {"VIGIL_EVENTS", "VIGIL_JOBS"} and all(s["replicas"] >= 1 for s in q["streams"])
        consumers = {c["consumer"]: c for c in q["consumers"]}
        assert {"scan-workers-aws", "scan-workers-repo", "repo-fix-workers", "notifier-email"} <= set(consumers), sorted(consumers)
        assert all(c["ack_floor_lag"] >= 0 and c["pending"] >= 0 for c in q["consumers"])

        svc = owner.get("/ops/services").json()
        assert svc["services"]["identity"] == 2 and svc["services"]["scan-orchestrator"] >= 1, svc["services"]
        identity = [r for r in svc["replicas"] if r["service"] == "identity"]
        assert all(r["version"] and r["uptime_seconds"] >= 0 and r["requests"] > 0 for r in identity), identity
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
