"""Notifier: emails through a real SMTP server, signed webhooks to a real HTTP receiver, audit log."""
import base64
import hashlib
import hmac
import json
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import Client, assert_envelope, free_port, unique_email


class Receiver:
    """Local webhook receiver. Path /ok answers 200; /flaky/<n> fails n times (500) per webhook-id then 200;
    /bad answers 400; /down always 500; /slow-429 answers 429 with Retry-After: 1 once per webhook-id."""

    def __init__(self):
        self.requests = []
        self.failures = {}
        self.lock = threading.Lock()
        rec = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                wid = self.headers.get("webhook-id")
                with rec.lock:
                    rec.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": body, "at": time.time()})
                    status = 200
                    if self.path.startswith("/flaky/"):
                        n = int(self.path.split("/")[2])
                        seen = rec.failures.get(wid, 0)
                        if seen < n:
                            rec.failures[wid] = seen + 1
                            status = 500
                    elif self.path == "/slow":
                        time.sleep(0.2)
                    elif self.path == "/bad":
                        status = 400
                    elif self.path == "/down":
                        status = 500
                    elif self.path == "/slow-429" and not rec.failures.get(wid):
                        rec.failures[wid] = 1
                        status = 429
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, predicate, count=1, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                hits = [r for r in self.requests if predicate(r)]
            if len(hits) >= count:
                return hits
            time.sleep(0.05)
        raise AssertionError(f"expected {count} matching webhook requests, got {len(hits)}")


def verify(req, secret, tolerance=300):
    """Independent Standard Webhooks verification with Python's hmac."""
    h = req["headers"]
    ts = int(h["webhook-timestamp"])
    assert abs(time.time() - ts) <= tolerance, "timestamp outside the replay window"
    key = base64.b64decode(secret[len("whsec_"):])
    signed = f"{h['webhook-id']}.{ts}.".encode() + req["body"]
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig.split(",", 1)[1] == expected for sig in h["webhook-signature"].split(" "))


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


def test_identity_emails_arrive_by_smtp_with_starttls_and_auth(stack, anon):
    email = unique_email("mail")
    r = anon.post("/auth/signup", {"email": email, "password": "a good password!", "full_name": "Mae", "workspace_name": "Mail Co"})
    assert r.status_code == 201
    m = stack.mail.wait_for(lambda m: email in m["rcpt_tos"])
    assert m["tls"] and m["authenticated"]
    msg = m["message"]
    assert msg["To"] == email and "Verify" in msg["Subject"] and msg["From"] == "Vigil <no-reply@vigil.test>"
    assert msg["Message-ID"] and msg["Date"]
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    token = [w for w in parts["text/plain"].split() if "token=" in w][0].split("token=")[1]
    assert f'href="http://127.0.0.1:8080/verify-email?token={token}"' in parts["text/html"]
    # The link in the email works.
    assert anon.post(f"/auth/verify-email/{token}").status_code == 200
    # Password reset mail too.
    anon.post("/auth/forgot-password", {"email": email})
    reset = stack.mail.wait_for(lambda m: email in m["rcpt_tos"] and "Reset" in m["message"]["Subject"])
    assert "reset-password?token=vpr_" in reset["message"].get_payload()[0].get_payload(decode=True).decode()


def test_signed_webhooks_retries_redelivery_and_rotation(stack, signup, receiver):
    owner, ob, _ = signup("hooks")
    r = owner.post("/webhooks/endpoints", {"url": receiver.url("/flaky/2"), "events": ["apikey.*"]})
    assert r.status_code == 201, r.text
    ep = r.json()
    secret = ep["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in owner.get("/webhooks/endpoints").json()["items"][0]

    key = owner.post("/api-keys/", {"name": "hooked"}).json()
    hits = receiver.wait(lambda q: q["path"] == "/flaky/2" and json.loads(q["body"])["data"].get("api_key_id") == key["id"], count=3)
    assert len({h["headers"]["webhook-id"] for h in hits}) == 1  # same id on every retry
    assert all(verify(h, secret) for h in hits)
    body = json.loads(hits[-1]["body"])
    assert body["type"] == "apikey.created" and body["timestamp"] and body["data"]["prefix"] == key["prefix"]
    assert key["key"] not in hits[-1]["body"].decode()
    # Exactly one success recorded, after two failures.
    deadline = time.time() + 10
    while time.time() < deadline:
        d = owner.get(f"/webhooks/endpoints/{ep['id']}/deliveries").json()["items"]
        if d and d[0]["status"] == "delivered":
            break
        time.sleep(0.1)
    assert d[0]["status"] == "delivered" and d[0]["attempts"] == 3 and d[0]["last_status"] == 200

    # Redeliver by hand: same webhook-id again.
    r = owner.post(f"/webhooks/deliveries/{d[0]['id']}/redeliver")
    assert r.status_code == 200
    again = receiver.wait(lambda q: q["headers"]["webhook-id"] == hits[0]["headers"]["webhook-id"], count=4)
    assert verify(again[-1], secret)

    # Rotation: during the overlap both secrets sign.
    new = owner.post(f"/webhooks/endpoints/{ep['id']}/rotate-secret", {"overlap_seconds": 600}).json()["secret"]
    t = owner.post(f"/webhooks/endpoints/{ep['id']}/test")
    assert t.status_code == 200
    last = receiver.wait(lambda q: json.loads(q["body"])["type"] == "webhook.test", count=1)[-1]
    assert len(last["headers"]["webhook-signature"].split(" ")) == 2
    assert verify(last, new) and verify(last, secret)
    assert t.json()["status"] in ("pending", "delivered")


def test_no_retry_on_4xx_and_disable_after_failures(stack, signup, receiver):
    owner, ob, _ = signup("failing")
    bad = owner.post("/webhooks/endpoints", {"url": receiver.url("/bad"), "events": ["*"]}).json()
    down = owner.post("/webhooks/endpoints", {"url": receiver.url("/down"), "events": ["apikey.created"]}).json()
    for i in range(4):
        owner.post("/api-keys/", {"name": f"k{i}"})
    deadline = time.time() + 30
    while time.time() < deadline:
        eps = {e["id"]: e for e in owner.get("/webhooks/endpoints").json()["items"]}
        if not eps[down["id"]]["is_active"]:
            break
        time.sleep(0.2)
    assert eps[down["id"]]["is_active"] is False and "consecutive" in eps[down["id"]]["disabled_reason"]
    stack.bus.wait_for(lambda b: b["type"] == "webhook.endpoint_disabled" and b["data"]["endpoint_id"] == down["id"],
                       "vigil.events.webhook.", timeout=10)
    bad_deliveries = owner.get(f"/webhooks/endpoints/{bad['id']}/deliveries").json()["items"]
    assert bad_deliveries and all(d["attempts"] == 1 and d["status"] == "failed" and d["last_status"] == 400
                                  for d in bad_deliveries if d["status"] != "pending")


def test_retry_after_is_honoured(stack, signup, receiver):
    owner, _, _ = signup("retryafter")
    ep = owner.post("/webhooks/endpoints", {"url": receiver.url("/slow-429"), "events": ["apikey.created"]}).json()
    owner.post("/api-keys/", {"name": "x"})
    hits = receiver.wait(lambda q: q["path"] == "/slow-429" and json.loads(q["body"])["type"] == "apikey.created", count=2)
    assert hits[1]["at"] - hits[0]["at"] >= 0.9
    assert ep["id"]


def test_webhook_input_validation_and_ssrf(stack, signup):
    owner, _, _ = signup("ssrf")
    for url in ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/hook", "http://[fe80::1]/x", "http://100.64.0.1/",
                "ftp://example.com/x", "not a url", "http://user:pw@127.0.0.1/"]:
        b = assert_envelope(owner.post("/webhooks/endpoints", {"url": url, "events": ["*"]}), 422)
        assert b["issues"][0]["path"] == "body.url", url
    assert_envelope(owner.post("/webhooks/endpoints", {"url": "http://127.0.0.1:9/x", "events": []}), 422)
    assert_envelope(owner.post("/webhooks/endpoints", {"url": "http://127.0.0.1:9/x", "events": ["*"], "min_severity": "huge"}), 422)
    assert_envelope(owner.post("/webhooks/endpoints", {"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "plain"}), 422)
    types = owner.get("/events/types").json()["items"]
    assert {"apikey.created", "webhook.endpoint_disabled"} <= {t["type"] for t in types}


def test_audit_log_records_changes_per_workspace(stack, signup):
    a, ab, _ = signup("audit-a")
    b, _, _ = signup("audit-b")
    key = a.post("/api-keys/", {"name": "audited"}).json()
    a.delete(f"/api-keys/{key['id']}", headers={"x-correlation-id": "audit-trail-1", "User-Agent": "audit-test/1.0"})
    deadline = time.time() + 10
    while time.time() < deadline:
        logs = a.get("/webhooks/audit-logs?action=apikey.revoked").json()["items"]
        if logs:
            break
        time.sleep(0.1)
    rec = logs[0]
    assert rec["resource_type"] == "apikey" and rec["resource_id"] == key["id"]
    assert rec["actor"] == ab["user"]["id"] and rec["workspace"] == ab["workspace"]["id"]
    assert rec["correlation_id"] == "audit-trail-1" and rec["user_agent"] == "audit-test/1.0" and rec["ip"] == "127.0.0.1"
    every = a.get("/webhooks/audit-logs?limit=100").json()["items"]
    assert {"user.signed_up", "apikey.created", "apikey.revoked"} <= {r["action"] for r in every}
    assert a.get("/webhooks/audit-logs?resource_type=apikey").json()["total"] == 2
    assert key["id"] not in b.get("/webhooks/audit-logs?limit=200").text
    assert_envelope(a.get("/webhooks/audit-logs?since=yesterday"), 422)


def test_restart_mid_backlog_delivers_each_event_once(stack, signup, receiver):
    owner, _, _ = signup("restart")
    ep = owner.post("/webhooks/endpoints", {"url": receiver.url("/slow"), "events": ["apikey.created"]}).json()
    proc = stack.procs["notifier"]
    # Paused while the events are made, so they wait in the stream as a backlog however slowly this machine
    # creates keys (on a loaded one the deliveries kept pace with the creations and nothing was left).
    proc.send_signal(signal.SIGSTOP)
    try:
        keys = [owner.post("/api-keys/", {"name": f"r{i}"}).json()["id"] for i in range(25)]
    finally:
        proc.send_signal(signal.SIGCONT)
    receiver.wait(lambda q: q["path"] == "/slow", count=3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    before = len([q for q in receiver.requests if q["path"] == "/slow"])
    stack.spawn("notifier", VIGIL_WEBHOOK_CONCURRENCY="4")
    hits = receiver.wait(lambda q: q["path"] == "/slow" and json.loads(q["body"])["data"].get("api_key_id") in keys,
                         count=25, timeout=60)
    ids = [h["headers"]["webhook-id"] for h in hits]
    assert len(set(ids)) == 25 and len(ids) == 25, "every event delivered exactly once to the endpoint"
    assert before < 25, "the restarted replica had a backlog to deliver"
    deadline = time.time() + 20
    while time.time() < deadline:
        r = owner.get(f"/webhooks/endpoints/{ep['id']}/deliveries?limit=100")
        if r.status_code == 503:  # the new replica is still starting
            time.sleep(0.2)
            continue
        assert r.status_code == 200, r.text
        d = r.json()["items"]
        if len(d) == 25 and all(x["status"] == "delivered" for x in d):
            break
        time.sleep(0.2)
    assert len(d) == 25 and all(x["status"] == "delivered" and x["attempts"] == 1 for x in d)


def test_contact_form_validated_rate_limited_and_mailed(stack, anon):
    import requests
    assert requests.get(stack.url + "/status").json()["features"]["contact_captcha"] == "off"
    b = assert_envelope(anon.post("/contact/", {"name": "", "email": "nope", "message": "short"}), 422)
    assert {i["path"] for i in b["issues"]} == {"body.name", "body.email", "body.message"}
    r = anon.post("/contact/", {"name": "Dana", "email": "dana@example.com", "message": "Please tell me about Vigil pricing.",
                                "company": "Acme"})
    assert r.status_code == 200, r.text
    m = stack.mail.wait_for(lambda m: "sales@vigil.test" in m["rcpt_tos"])
    text = [p for p in m["message"].walk() if p.get_content_type() == "text/plain"][0].get_payload(decode=True).decode()
    assert "Dana <dana@example.com>" in text and "pricing" in text and "Company: Acme" in text
    for _ in range(2):
        anon.post("/contact/", {"name": "Dana", "email": "dana@example.com", "message": "Another message for you."})
    assert_envelope(anon.post("/contact/", {"name": "Dana", "email": "dana@example.com", "message": "One too many messages."}),
                    429, "rate_limited")


def publish_event(stack, subject, body):
    async def go():
        js = stack.bus.nc.jetstream()
        await js.publish(subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": body["id"]})
    stack.bus.run(go())


def test_slack_and_email_channels_digest_per_scan_and_test_send(stack, signup, receiver):
    owner, ob, _ = signup("channels")
    slack = owner.post("/notifications/channels", {"name": "ops-slack", "method": "slack",
                                                   "config": {"webhook_url": receiver.url("/slack/T000/B000/secret-part")},
                                                   "events": ["scan.*", "apikey.*"], "min_severity": "info"})
    assert slack.status_code == 201, slack.text
    slack = slack.json()
    assert "secret-part" not in json.dumps(slack) and "secret-part" not in owner.get("/notifications/channels").text
    mail = owner.post("/notifications/channels", {"name": "ops-mail", "method": "email", "config": {"to": ["ops@vigil.test"]},
                                                  "events": ["scan.completed"]}).json()
    assert_envelope(owner.post("/notifications/channels", {"name": "x", "method": "pager", "config": {}}), 422)
    assert_envelope(owner.post("/notifications/channels", {"name": "x", "method": "slack",
                                                           "config": {"webhook_url": "http://169.254.169.254/"}}), 422)
    assert_envelope(owner.post("/notifications/channels", {"name": "x", "method": "email", "config": {"to": ["bad"]}}), 422)
    assert owner.get("/notifications/policy").json()["delivery"] == "digest"

    # Test send goes out now.
    r = owner.post("/notifications/channels/test", {"channel_id": slack["id"]})
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    test_msg = receiver.wait(lambda q: q["path"].startswith("/slack/") and "test notification" in q["body"].decode())[-1]
    assert json.loads(test_msg["body"])["blocks"][0]["type"] == "header"

    # One message per completed scan, with the counts (digest mode).
    scan_id = str(uuid.uuid4())
    publish_event(stack, "vigil.events.scan.completed", {
        "id": str(uuid.uuid4()), "type": "scan.completed", "occurred_at": "2026-11-22T10:00:00.000Z",
        "tenant_id": ob["workspace"]["id"],
        "data": {"scan_id": scan_id, "connection_id": str(uuid.uuid4()), "status": "completed",
                 "findings_count": {"critical": 1, "high": 2, "medium": 0, "low": 3, "info": 0}, "estimated_monthly_savings": 12.5}})
    got = receiver.wait(lambda q: q["path"].startswith("/slack/") and scan_id in q["body"].decode())
    text = json.loads(got[0]["body"])["text"]
    assert "6 findings" in text and "critical: 1" in text and "$12.50" in text
    m = stack.mail.wait_for(lambda m: "ops@vigil.test" in m["rcpt_tos"])
    assert m["message"]["Subject"] == "Vigil scan completed"
    time.sleep(1)
    assert len([q for q in receiver.requests if scan_id in q["body"].decode()]) == 1  # exactly one message for the scan

    # Disable a channel: nothing more goes to it.
    r = owner.patch(f"/notifications/channels/{slack['id']}", {"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert owner.patch("/notifications/policy", {"delivery": "every_event"}).json()["delivery"] == "every_event"
    assert_envelope(owner.patch("/notifications/policy", {"delivery": "sometimes"}), 422)
    assert owner.delete(f"/notifications/channels/{mail['id']}").status_code == 204
    assert_envelope(owner.delete(f"/notifications/channels/{mail['id']}"), 404)

    # Every event: a finding.batch's items reach a channel one message each, filtered by its severity floor,
    # and the same batch delivered again sends nothing more (one read of the owed channels per batch).
    feed = owner.post("/notifications/channels", {"name": "findings-slack", "method": "slack",
                                                  "config": {"webhook_url": receiver.url("/slack/T000/B000/findings")},
                                                  "events": ["finding.*"], "min_severity": "high"})
    assert feed.status_code == 201, feed.text
    tenant = ob["workspace"]["id"]
    items = []
    for sev in ("critical", "high", "low", "high", "info"):
        eid = str(uuid.uuid4())
        items.append({"id": eid, "type": "finding.opened", "occurred_at": "2026-11-22T10:00:00.000Z", "tenant_id": tenant,
                      "data": {"finding_id": str(uuid.uuid4()), "event_id": eid, "severity": sev, "status": "open",
                               "rule_id": "aws.s3.bucket_acl_public_read", "title": f"batched {sev}"}})
    batch = {"id": str(uuid.uuid4()), "type": "finding.batch", "occurred_at": "2026-11-22T10:00:00.000Z", "tenant_id": tenant,
             "data": {"count": len(items), "findings": items}}
    publish_event(stack, "vigil.events.finding.batch", batch)
    wanted = [i["data"]["finding_id"] for i in items if i["data"]["severity"] in ("critical", "high")]
    receiver.wait(lambda q: q["path"].endswith("/findings") and wanted[-1] in q["body"].decode())
    time.sleep(1)
    publish_event(stack, "vigil.events.finding.batch", dict(batch, id=str(uuid.uuid4())))
    time.sleep(2)
    sent = [q["body"].decode() for q in receiver.requests if q["path"].endswith("/findings")]
    assert {i["data"]["finding_id"] for i in items if any(i["data"]["finding_id"] in b for b in sent)} == set(wanted), sent
    assert len(sent) == 3, sent


def test_webhook_connection_filter_and_events_published_late(stack, signup, receiver):
    owner, ob, _ = signup("connfilter")
    # The notifier looks for endpoints while it handles the signup's audited events: none yet.
    deadline = time.time() + 20
    while time.time() < deadline:
        r = owner.get("/webhooks/audit-logs")
        if r.status_code == 200 and r.json()["total"] > 0:
            break
        time.sleep(0.1)
    wanted = str(uuid.uuid4())
    ep = owner.post("/webhooks/endpoints", {"url": receiver.url("/ok"), "events": ["scan.completed"],
                                            "connection_ids": [wanted]})
    assert ep.status_code == 201, ep.text
    ep = ep.json()
    # Events that occurred an hour ago (before that look) but are published now, as a relay that
    # was down would: they are delivered to the endpoint that exists when they are received. (The
    # endpoint's own audited event may refresh the look first; PresenceCacheTests pins the rule.)
    occurred = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3600))
    for conn in (str(uuid.uuid4()), wanted):
        publish_event(stack, "vigil.events.scan.completed", {
            "id": str(uuid.uuid4()), "type": "scan.completed", "occurred_at": occurred,
            "tenant_id": ob["workspace"]["id"],
            "data": {"scan_id": str(uuid.uuid4()), "connection_id": conn, "status": "completed", "findings_count": {}}})
    hits = receiver.wait(lambda q: q["path"] == "/ok" and json.loads(q["body"])["data"].get("connection_id") == wanted)
    time.sleep(1)  # give the filtered-out event time to (not) arrive
    delivered = owner.get(f"/webhooks/endpoints/{ep['id']}/deliveries").json()["items"]
    assert len(hits) == 1 and len(delivered) == 1, "only the event of the subscribed connection is delivered"


def test_scan_event_bursts_are_settled_per_batch_yet_reach_whoever_wants_them(stack, signup, receiver):
    """A burst of finding batches from scans (no actor) for a workspace with no endpoints or channels is
    settled a fetched batch at a time; interleaved batches of a workspace with an endpoint are still
    delivered, a change the audit log keeps is still recorded, and an endpoint created afterwards gets
    the next event (also one an earlier version published alone, on its own subject)."""
    quiet, qb, _ = signup("quiet")
    loud, lb, _ = signup("loud")
    loud.post("/webhooks/endpoints", {"url": receiver.url("/burst"), "events": ["finding.opened"]})
    qt, lt = qb["workspace"]["id"], lb["workspace"]["id"]

    def event(tenant, type_="finding.opened", actor=None):
        eid = str(uuid.uuid4())
        data = {"finding_id": str(uuid.uuid4()), "event_id": eid, "connection_id": str(uuid.uuid4()), "rule_id": "aws.s3.bucket_acl_public_read",
                "severity": "high", "status": "open", "resource_id": "arn:aws:s3:::burst", "title": "burst"}
        if actor:
            data["actor"] = actor
        return {"id": eid, "type": type_, "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "tenant_id": tenant, "data": data}

    def batch(tenant, items, actor=None):
        data = {"count": len(items), "findings": items}
        if actor:
            data["actor"] = actor
        return {"id": str(uuid.uuid4()), "type": "finding.batch", "occurred_at": items[0]["occurred_at"], "tenant_id": tenant, "data": data}

    burst, wanted = [], []
    for i in range(150):
        burst.append(batch(qt, [event(qt) for _ in range(4)]))
        if i % 15 == 0:
            wanted.append(event(lt))
            burst.append(batch(lt, [wanted[-1]]))
    kept = event(qt, "finding.suppressed", actor=qb["user"]["id"])
    kept["data"]["status"] = "suppressed"
    burst.insert(75, batch(qt, [event(qt, "finding.resolved"), kept], actor=qb["user"]["id"]))

    async def go():
        js = stack.bus.nc.jetstream()
        for b in burst:
            await js.publish("vigil.events." + b["type"], json.dumps(b).encode(), headers={"Nats-Msg-Id": b["id"]})
    stack.bus.run(go())

    hits = receiver.wait(lambda q: q["path"] == "/burst", count=len(wanted))
    assert sorted(json.loads(h["body"])["data"]["finding_id"] for h in hits) == sorted(w["data"]["finding_id"] for w in wanted)
    deadline, logs = time.time() + 10, []
    while time.time() < deadline and not logs:
        logs = quiet.get("/webhooks/audit-logs?action=finding.suppressed").json()["items"]
        time.sleep(0.1)
    assert [r["resource_id"] for r in logs] == [kept["data"]["finding_id"]]
    consumer = lambda: json.loads(stack.bus.request("$JS.API.CONSUMER.INFO.VIGIL_EVENTS.notifier-events", b"").data)
    deadline = time.time() + 10
    while time.time() < deadline and (lambda c: c["num_pending"] or c["num_ack_pending"])(consumer()):
        time.sleep(0.1)
    assert (lambda c: (c["num_pending"], c["num_ack_pending"]))(consumer()) == (0, 0)

    # The quiet workspace's "nobody listens" answer is never reused for an event received later.
    quiet.post("/webhooks/endpoints", {"url": receiver.url("/late"), "events": ["finding.opened"]})
    late = event(qt)
    publish_event(stack, "vigil.events.finding.opened", late)
    receiver.wait(lambda q: q["path"] == "/late" and json.loads(q["body"])["data"]["finding_id"] == late["data"]["finding_id"])


def test_finding_batches_reach_webhooks_per_finding_or_per_batch(stack, signup, receiver):
    """A scan's finding events are one bus message per ingest batch (no per-finding messages); an
    endpoint with the default `finding_delivery` gets one signed delivery per finding (the event's own
    id, as before batching), one with `batch` gets one delivery listing the findings its filters match."""
    from test_findings import publish_results, result
    owner, ob, _ = signup("batches")
    tenant, conn, scan = ob["workspace"]["id"], str(uuid.uuid4()), str(uuid.uuid4())
    assert_envelope(owner.post("/webhooks/endpoints", {"url": receiver.url("/b"), "events": ["finding.*"], "finding_delivery": "each"}), 422)
    per = owner.post("/webhooks/endpoints", {"url": receiver.url("/per"), "events": ["finding.opened"]}).json()
    whole = owner.post("/webhooks/endpoints", {"url": receiver.url("/whole"), "events": ["finding.*"], "finding_delivery": "batch"}).json()
    high = owner.post("/webhooks/endpoints", {"url": receiver.url("/high"), "events": ["finding.opened"], "finding_delivery": "batch",
                                              "min_severity": "critical"}).json()
    assert per["finding_delivery"] == "per_finding" and whole["finding_delivery"] == "batch"
    results = [result(tenant, conn, "aws.s3.bucket_acl_public_read", f"b{i}", severity="critical" if i % 10 == 0 else "high")
               for i in range(120)]
    publish_results(stack, tenant, scan, conn, results)
    per_hits = receiver.wait(lambda q: q["path"] == "/per", count=120)
    [batch_hit] = receiver.wait(lambda q: q["path"] == "/whole")
    [high_hit] = receiver.wait(lambda q: q["path"] == "/high")
    time.sleep(1)
    assert len([q for q in receiver.requests if q["path"] in ("/per", "/whole", "/high")]) == 122, "nothing delivered twice"
    assert all(verify(h, per["secret"]) for h in per_hits) and verify(batch_hit, whole["secret"])
    bodies = [json.loads(h["body"]) for h in per_hits]
    assert {b["type"] for b in bodies} == {"finding.opened"} and len({h["headers"]["webhook-id"] for h in per_hits}) == 120
    assert len({b["data"]["event_id"] for b in bodies}) == 120
    whole_body = json.loads(batch_hit["body"])
    assert whole_body["type"] == "finding.batch" and whole_body["data"]["count"] == 120
    items = whole_body["data"]["findings"]
    assert sorted(i["id"] for i in items) == sorted(b["data"]["event_id"] for b in bodies)
    assert {i["data"]["resource_id"] for i in items} == {r["resource_id"] for r in results}
    high_items = json.loads(high_hit["body"])["data"]["findings"]
    assert len(high_items) == 12 and {i["data"]["severity"] for i in high_items} == {"critical"}
    # On the bus: one batch message for the 120 events, none on the per-finding subjects.
    batches = [b for _, _, b in stack.bus.received("vigil.events.finding.batch") if b["tenant_id"] == tenant]
    assert len(batches) == 1 and batches[0]["data"]["count"] == 120 and batches[0]["data"]["scan_id"] == scan
    deliveries = owner.get(f"/webhooks/endpoints/{whole['id']}/deliveries").json()["items"]
    assert [(d["event_id"], d["event_type"]) for d in deliveries] == [(batches[0]["id"], "finding.batch")]
    assert not [s for s, _, b in stack.bus.received("vigil.events.finding.") if s != "vigil.events.finding.batch" and b["tenant_id"] == tenant]
