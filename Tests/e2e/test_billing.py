"""Billing end to end: the plan catalogue, trials, plan changes with the manual provider, period
rollover, quotas reserved atomically and enforced on every path (scans, connections, seats, fixes,
API rate), usage metered from events, and Stripe against localstripe (customers, subscriptions,
cancellation and the webhooks it sends) plus Stripe-shaped payloads for what localstripe lacks."""
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Client, assert_envelope, free_port, join_workspace, psql, wait_port
from test_scans import connect, trigger, wait_scan

HERE = os.path.dirname(__file__)
WEBHOOK_SECRET = "whsec_vigil_test_0123456789abcdef"


def tenant_of(client):
    return client.get("/auth/me").json()["workspace"]["id"]


def set_plan(stack, client, plan, status="active"):
    """Puts a workspace on a plan directly (as an operator would with the manual provider)."""
    t = tenant_of(client)
    client.get("/billing/subscription")  # creates the row if needed
    psql(stack, f"UPDATE billing.subscriptions SET plan = '{plan}', status = '{status}', trial_end = NULL, scheduled_plan = NULL WHERE tenant_id = '{t}'")
    time.sleep(1.2)  # the gateway's plan cache (1 s in tests)
    return t


def bus_request(stack, subject, body, tenant):
    async def go():
        return await stack.bus.nc.request(subject, json.dumps(body).encode(), timeout=5,
                                          headers={"Vigil-Tenant-Id": tenant, "Vigil-Correlation-Id": os.urandom(8).hex()})
    m = stack.bus.run(go())
    return (m.headers or {}), json.loads(m.data)


def test_plans_are_public_and_new_workspaces_start_a_trial(stack, anon, signup):
    r = anon.get("/billing/plans")
    assert r.status_code == 200, r.text
    plans = {p["id"]: p for p in r.json()["items"]}
    assert set(plans) == {"free", "pro", "business", "enterprise"}
    assert plans["pro"]["limits"]["connections"] == 5 and plans["enterprise"]["limits"]["scans_per_month"] is None
    assert {p["interval"] for p in plans["pro"]["prices"]} == {"month", "year"} and "auto_remediation" in plans["pro"]["features"]
    owner, _, _ = signup("trial")
    s = owner.get("/billing/subscription").json()
    assert s["plan"] == "pro" and s["status"] == "trialing" and s["provider"] == "manual" and s["restricted"] is False
    trial_days = (time.mktime(time.strptime(s["trial_end"][:19], "%Y-%m-%dT%H:%M:%S")) - time.time()) / 86400
    assert 13.9 < trial_days < 14.1
    assert s["usage"]["scans"] == {"name": "scans", "limit": 500, "used": 0, "reserved": 0, "remaining": 500, "resets_at": s["current_period_end"]}
    b = owner.get("/quotas/balance").json()
    assert b["plan"] == "pro" and set(b["quotas"]) >= {"scans", "remediations", "connections", "seats", "api_requests_per_minute"}
    assert b["quotas"]["seats"]["limit"] == 10
    assert_envelope(anon.get("/billing/subscription"), 401)
    assert_envelope(anon.get("/quotas/balance"), 401)


def test_manual_plan_changes_roles_cancel_resume_and_rollover(stack, signup):
    owner, _, _ = signup("plans")
    t = tenant_of(owner)
    for role in ("viewer", "analyst"):
        c = join_workspace(stack, owner, role)
        assert c.get("/billing/subscription").status_code == 200
        for path, body in (("/billing/checkout", {"plan": "business"}), ("/billing/portal", None), ("/billing/cancel", None), ("/billing/resume", None)):
            assert_envelope(c.post(path, body), 403, "forbidden")
    billing = join_workspace(stack, owner, "billing")

    for body, path in [({}, "body.plan"), ({"plan": "platinum"}, "body.plan"), ({"plan": "pro", "interval": "week"}, "body.interval"),
                       ({"plan": "free", "interval": "year"}, "body.interval")]:
        e = assert_envelope(owner.post("/billing/checkout", body), 422)
        assert path in {i["path"] for i in e["issues"]}, e

    # Upgrade: at once (and the trial becomes a paid plan).
    r = billing.post("/billing/checkout", {"plan": "business"})
    assert r.status_code == 200 and r.json()["status"] == "applied" and r.json()["provider"] == "manual", r.text
    s = owner.get("/billing/subscription").json()
    assert s["plan"] == "business" and s["status"] == "active" and s["trial_end"] is None and s["limits"]["connections"] == 25
    assert_envelope(owner.post("/billing/checkout", {"plan": "business"}), 409, "already_on_plan")
    # Downgrade: at the period end; nothing changes now.
    r = owner.post("/billing/checkout", {"plan": "pro"})
    assert r.status_code == 200 and r.json()["status"] == "scheduled" and r.json()["effective_at"] == s["current_period_end"], r.text
    s = owner.get("/billing/subscription").json()
    assert s["plan"] == "business" and s["scheduled_plan"] == "pro"
    assert owner.post("/billing/portal").json() == {"provider": "manual", "url": "http://127.0.0.1:8080/settings/billing"}

    r = owner.post("/billing/cancel")
    assert r.status_code == 200 and r.json()["cancel_at_period_end"] is True
    assert_envelope(owner.post("/billing/cancel"), 409, "already_canceling")
    r = billing.post("/billing/resume")
    assert r.status_code == 200 and r.json()["cancel_at_period_end"] is False
    assert_envelope(owner.post("/billing/resume"), 409, "not_canceling")

    # Usage this period, metered over the bus (a reservation committed), then the period ends.
    h, body = bus_request(stack, "vigil.billing.quota.reserve", {"quota": "scans", "ref": "manual-1"}, t)
    assert "Nats-Service-Error-Code" not in h, body
    bus_request(stack, "vigil.billing.quota.commit", {"quota": "scans", "ref": "manual-1"}, t)
    h, again = bus_request(stack, "vigil.billing.quota.commit", {"quota": "scans", "ref": "manual-1"}, t)
    assert again["status"] == "committed"
    assert owner.get("/quotas/balance").json()["quotas"]["scans"]["used"] == 1
    old_end = s["current_period_end"]
    psql(stack, f"UPDATE billing.subscriptions SET current_period_end = now() - interval '1 second' WHERE tenant_id = '{t}'")
    deadline = time.time() + 15
    while time.time() < deadline and owner.get("/billing/subscription").json()["plan"] != "pro":
        time.sleep(0.3)
    s = owner.get("/billing/subscription").json()
    assert s["plan"] == "pro" and s["scheduled_plan"] is None and s["status"] == "active", s
    assert s["current_period_start"] != old_end and s["usage"]["scans"]["used"] == 0
    # Cancel, then the period ends: canceled, on the free plan's limits.
    owner.post("/billing/cancel")
    psql(stack, f"UPDATE billing.subscriptions SET current_period_end = now() - interval '1 second' WHERE tenant_id = '{t}'")
    deadline = time.time() + 15
    while time.time() < deadline and owner.get("/billing/subscription").json()["status"] != "canceled":
        time.sleep(0.3)
    s = owner.get("/billing/subscription").json()
    assert s["status"] == "canceled" and s["plan"] == "free" and s["limits"]["connections"] == 1
    assert_envelope(owner.post("/billing/cancel"), 409, "nothing_to_cancel")
    events = [b for _, _, b in stack.bus.received("vigil.events.billing.subscription_updated") if b["tenant_id"] == t]
    assert {"upgrade", "downgrade_scheduled", "cancel_at_period_end", "resume", "period"} <= {e["data"]["change"] for e in events}


def test_concurrent_triggers_take_exactly_the_remaining_scans(stack, signup, strict_moto):
    owner, _, _ = signup("quota")
    t = tenant_of(owner)
    conn = connect(owner, strict_moto, regions=("us-east-1",), access_key_id="AKIAUNKNOWNKEY000001",
                   secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    s = owner.get("/billing/subscription").json()
    # A scan that fails (refused credentials) does not consume quota.
    failed = wait_scan(owner, trigger(owner, conn))
    assert failed["status"] == "failed"
    deadline = time.time() + 10
    while time.time() < deadline and owner.get("/quotas/balance").json()["quotas"]["scans"]["reserved"] != 0:
        time.sleep(0.2)
    assert owner.get("/quotas/balance").json()["quotas"]["scans"] == {"name": "scans", "limit": 500, "used": 0, "reserved": 0, "remaining": 500,
                                                                      "resets_at": s["current_period_end"]}
    # 10 scans left; 100 triggers at once accept exactly 10. The scans go to an endpoint that accepts
    # connections and never answers, so none finishes (and gives its reservation back) meanwhile.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(200)
    held = []
    threading.Thread(target=lambda: [held.append(hang.accept()) for _ in range(200)], daemon=True).start()
    slow = connect(owner, f"http://127.0.0.1:{hang.getsockname()[1]}", regions=("us-east-1",), access_key_id="AKIAUNKNOWNKEY000001",
                   secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    psql(stack, f"INSERT INTO billing.usage (tenant_id, period_start, quota, used) SELECT tenant_id, current_period_start, 'scans', 490 "
                f"FROM billing.subscriptions WHERE tenant_id = '{t}' ON CONFLICT (tenant_id, period_start, quota) DO UPDATE SET used = 490")
    def fire(_):
        return owner.post("/scans/trigger", {"connection_id": slow})
    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        replies = list(pool.map(fire, range(100)))
    accepted = [r for r in replies if r.status_code == 202]
    refused = [r for r in replies if r.status_code == 403]
    assert len(accepted) == 10 and len(refused) == 90, [r.status_code for r in replies]
    for r in refused:
        body = r.json()
        assert body["error"] == "quota_exceeded" and body["quota"]["name"] == "scans" and body["quota"]["limit"] == 500, body
        assert body["quota"]["used"] == 500 and body["quota"]["resets_at"] == s["current_period_end"]
    b = owner.get("/quotas/balance").json()["quotas"]["scans"]
    assert b == {"name": "scans", "limit": 500, "used": 490, "reserved": 10, "remaining": 0, "resets_at": s["current_period_end"]}
    # Canceled scans give their reservations back.
    for r in accepted:
        assert owner.post(f"/scans/{r.json()['id']}/cancel").status_code == 200
    deadline = time.time() + 20
    while time.time() < deadline and owner.get("/quotas/balance").json()["quotas"]["scans"]["reserved"] != 0:
        time.sleep(0.3)
    b = owner.get("/quotas/balance").json()["quotas"]["scans"]
    assert b["used"] == 490 and b["reserved"] == 0 and b["remaining"] == 10
    hang.close()


def test_completed_scans_count_and_quota_refusals_on_every_path(stack, signup, seeded_moto):
    endpoint, manifest = seeded_moto
    owner, _, _ = signup("limits")
    t = tenant_of(owner)
    c1 = connect(owner, endpoint, manifest, regions=("us-east-1",))
    scan = wait_scan(owner, trigger(owner, c1, services=["sqs"]))
    assert scan["status"] == "completed"
    deadline = time.time() + 10
    while time.time() < deadline and owner.get("/quotas/balance").json()["quotas"]["scans"]["used"] != 1:
        time.sleep(0.2)
    assert owner.get("/quotas/balance").json()["quotas"]["scans"]["used"] == 1
    assert any(b["data"]["ref"] == scan["id"] for _, _, b in stack.bus.received("vigil.events.billing.usage_recorded"))
    c2 = connect(owner, endpoint, manifest, regions=("us-east-1",))

    # Downgraded to free: 1 connection, 2 seats, no fixes, 120 requests a minute. Nothing is deleted;
    # the connection beyond the limit is read-only.
    set_plan(stack, owner, "free")
    e = assert_envelope(owner.post("/connections/", {"name": "third", "provider": "aws", "credentials": {
        "access_key_id": manifest["access_key_id"], "secret_access_key": manifest["secret_access_key"]},
        "settings": {"regions": ["us-east-1"], "endpoint_url": endpoint}}), 403, "quota_exceeded")
    assert e["quota"] == {"name": "connections", "limit": 1, "used": 2, "resets_at": None}
    assert len(owner.get("/connections/").json()["items"]) == 2
    e = assert_envelope(owner.post("/scans/trigger", {"connection_id": c2}), 403, "quota_exceeded")
    assert e["quota"]["name"] == "connections" and "read-only" in e["message"]
    ok = owner.post("/scans/trigger", {"connection_id": c1, "services": ["sqs"]})
    assert ok.status_code == 202, ok.text
    assert owner.get("/quotas/balance").json()["quotas"]["connections"]["used"] == 2

    join_workspace(stack, owner, "viewer")  # seat 2 of 2
    e = assert_envelope(owner.post("/users/invite", {"email": f"x-{os.urandom(3).hex()}@vigil.test", "role": "viewer"}), 403, "quota_exceeded")
    assert e["quota"] == {"name": "seats", "limit": 2, "used": 2, "resets_at": None}

    h, body = bus_request(stack, "vigil.billing.quota.reserve", {"quota": "remediations", "ref": "r-1"}, t)
    assert h.get("Nats-Service-Error-Code") == "403" and body["quota"]["name"] == "remediations" and body["quota"]["limit"] == 0

    # The plan's API rate (free: 120 a minute) answers 429 with the quota.
    codes = [owner.get("/billing/subscription").status_code for _ in range(140)]
    assert codes.count(429) >= 10 and codes[:100].count(200) == 100, codes
    r = owner.get("/billing/subscription")
    e = assert_envelope(r, 429, "quota_exceeded")
    assert e["quota"]["name"] == "api_requests_per_minute" and e["quota"]["limit"] == 120 and e["quota"]["resets_at"]


def test_webhooks_are_refused_without_a_configured_secret(stack):
    payload = fixture_event("event_invoice_paid.json", customer="cus_x", subscription="sub_x")
    assert_envelope(post_webhook(stack, payload, sign(payload)), 400, "webhooks_not_configured")


def test_internal_quota_subjects_validate(stack, signup):
    owner, _, _ = signup("qv")
    t = tenant_of(owner)
    for subject, body in [("vigil.billing.quota.reserve", {"quota": "bananas", "ref": "x"}), ("vigil.billing.quota.reserve", {"quota": "scans", "ref": ""}),
                          ("vigil.billing.quota.check", {"quota": "scans", "in_use": 1}), ("vigil.billing.quota.check", {"quota": "seats", "in_use": -1})]:
        h, _ = bus_request(stack, subject, body, t)
        assert h.get("Nats-Service-Error-Code") == "422", (subject, body)
    h, _ = bus_request(stack, "vigil.billing.quota.commit", {"quota": "scans", "ref": "never-reserved"}, t)
    assert h.get("Nats-Service-Error-Code") == "404"


# ---- Stripe ------------------------------------------------------------------------------------

class StripeFront:
    """Forwards to localstripe, and answers the two endpoints it lacks (Checkout Sessions, Billing
    Portal sessions) with Stripe-shaped payloads from Tests/e2e/stripe/."""

    def __init__(self, localstripe_url):
        front = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                front.requests.append((self.command, self.path, body.decode(), dict(self.headers)))
                fixed = {"/v1/checkout/sessions": "checkout_session.json", "/v1/billing_portal/sessions": "portal_session.json"}.get(self.path)
                if fixed:
                    form = dict(x.split("=", 1) for x in body.decode().split("&") if "=" in x)
                    from urllib.parse import unquote_plus
                    form = {unquote_plus(k): unquote_plus(v) for k, v in form.items()}
                    text = open(os.path.join(HERE, "stripe", fixed)).read()
                    for k, v in {"customer": form.get("customer", ""), "tenant": form.get("client_reference_id", ""),
                                 "success_url": form.get("success_url", ""), "cancel_url": form.get("cancel_url", ""),
                                 "return_url": form.get("return_url", "")}.items():
                        text = text.replace("{{%s}}" % k, v)
                    out, status = text.encode(), 200
                else:
                    req = urllib.request.Request(localstripe_url + self.path, data=body if self.command != "GET" else None, method=self.command,
                                                 headers={k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")})
                    try:
                        with urllib.request.urlopen(req, timeout=10) as r:
                            out, status = r.read(), r.status
                    except urllib.error.HTTPError as e:
                        out, status = e.read(), e.code
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_DELETE = do_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def stripe_call(base, method, path, params=None):
    from urllib.parse import urlencode
    req = urllib.request.Request(base + path, data=urlencode(params or {}).encode() if method != "GET" else None, method=method,
                                 headers={"Authorization": "Bearer sk_test_vigil"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def sign(payload, secret=WEBHOOK_SECRET, ts=None):
    ts = int(time.time()) if ts is None else ts
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"


def post_webhook(stack, payload, signature):
    import requests
    return requests.post(stack.url + "/api/v1/billing/webhooks/stripe", data=payload,
                         headers={"Stripe-Signature": signature, "Content-Type": "application/json"}, timeout=10)


def fixture_event(name, **values):
    text = open(os.path.join(HERE, "stripe", name)).read()
    for k, v in values.items():
        text = text.replace("{{%s}}" % k, v)
    return text.encode()


@pytest.fixture
def stripe(stack):
    port = free_port()
    proc = subprocess.Popen(["localstripe", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port, 30)
    ls = f"http://127.0.0.1:{port}"
    # localstripe keeps its objects in /tmp/localstripe.pickle across runs: start empty.
    urllib.request.urlopen(urllib.request.Request(f"{ls}/_config/data", method="DELETE"), timeout=10).read()
    stripe_call(ls, "POST", "/v1/products", {"id": "prod_vigil", "name": "Vigil"})
    for plan, amount in (("pro", 4900), ("business", 19900)):
        stripe_call(ls, "POST", "/v1/plans", {"id": f"price_{plan}_month", "amount": amount, "currency": "usd", "interval": "month",
                                              "product": "prod_vigil"})
    # localstripe delivers its own signed webhooks to the gateway, as Stripe would.
    req = urllib.request.Request(f"{ls}/_config/webhooks/vigil", method="POST",
                                 data=json.dumps({"url": stack.url + "/api/v1/billing/webhooks/stripe", "secret": WEBHOOK_SECRET}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    front = StripeFront(ls)
    stack.restart("billing", VIGIL_STRIPE_SECRET_KEY="sk_test_vigil", VIGIL_STRIPE_API_BASE=front.url, VIGIL_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                    VIGIL_STRIPE_PRICE_PRO_MONTH="price_pro_month", VIGIL_STRIPE_PRICE_BUSINESS_MONTH="price_business_month")
    try:
        yield ls, front
    finally:
        stack.restart("billing")
        front.stop()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def wait_sub(client, pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = client.get("/billing/subscription").json()
        if pred(s):
            return s
        time.sleep(0.3)
    raise AssertionError(f"subscription never matched: {client.get('/billing/subscription').text}")


def test_stripe_checkout_subscription_webhooks_and_state_machine(stack, signup, stripe):
    ls, front = stripe
    owner, _, _ = signup("stripe")
    t = tenant_of(owner)

    # Checkout: a Stripe customer for the workspace (in localstripe), then a Checkout Session.
    r = owner.post("/billing/checkout", {"plan": "pro"})
    assert r.status_code == 200 and r.json()["status"] == "redirect" and r.json()["url"].startswith("https://checkout.stripe.com/"), r.text
    session_form = [b for m, p, b, _ in front.requests if p == "/v1/checkout/sessions"][0]
    assert "line_items%5B0%5D%5Bprice%5D=price_pro_month" in session_form and f"client_reference_id={t}" in session_form
    assert all(h.get("Authorization") == "Bearer sk_test_vigil" for _, _, _, h in front.requests)
    customers = stripe_call(ls, "GET", "/v1/customers")["data"]
    cust = [c for c in customers if c["metadata"].get("tenant_id") == t]
    assert len(cust) == 1
    customer = cust[0]["id"]
    assert owner.get("/billing/subscription").json()["plan"] == "pro"  # still the trial until Stripe says so

    # The customer pays: localstripe creates the subscription and sends its signed webhooks.
    token = stripe_call(ls, "POST", "/v1/tokens", {"card[number]": "4242424242424242", "card[exp_month]": "12", "card[exp_year]": "2030", "card[cvc]": "123"})
    stripe_call(ls, "POST", f"/v1/customers/{customer}/sources", {"source": token["id"]})
    sub = stripe_call(ls, "POST", "/v1/subscriptions", {"customer": customer, "items[0][plan]": "price_pro_month", "metadata[tenant_id]": t,
                                                         "metadata[plan]": "pro"})
    s = wait_sub(owner, lambda s: s["provider"] == "stripe" and s["status"] == "active")
    assert s["plan"] == "pro" and s["trial_end"] is None
    assert int(time.mktime(time.strptime(s["current_period_end"][:19], "%Y-%m-%dT%H:%M:%S"))) - time.timezone == sub["current_period_end"]

    # The checkout.session.completed event (Stripe-shaped): signature checks and idempotency.
    payload = fixture_event("event_checkout_session_completed.json", tenant=t, customer=customer, subscription=sub["id"])
    r = post_webhook(stack, payload, sign(payload))
    assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False, "type": "checkout.session.completed"}, r.text
    r = post_webhook(stack, payload, sign(payload))
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert_envelope(post_webhook(stack, payload, sign(payload, secret="whsec_wrong")), 400, "invalid_signature")
    assert_envelope(post_webhook(stack, payload, sign(payload, ts=int(time.time()) - 3600)), 400, "stale_signature")
    assert_envelope(post_webhook(stack, payload, ""), 400, "invalid_signature")
    assert_envelope(post_webhook(stack, payload[:-5] + b"   }}", sign(payload)), 400, "invalid_signature")
    junk = b'{"hello": "world"}'
    assert_envelope(post_webhook(stack, junk, sign(junk)), 400, "invalid_event")
    assert_envelope(post_webhook(stack, b"not json", sign(b"not json")), 400, "invalid_event")

    # Cancel and resume go to Stripe.
    assert owner.post("/billing/cancel").json()["cancel_at_period_end"] is True
    assert stripe_call(ls, "GET", f"/v1/subscriptions/{sub['id']}")["cancel_at_period_end"] is True
    assert owner.post("/billing/resume").json()["cancel_at_period_end"] is False
    assert stripe_call(ls, "GET", f"/v1/subscriptions/{sub['id']}")["cancel_at_period_end"] is False
    # An upgrade changes the Stripe subscription's plan at once.
    r = owner.post("/billing/checkout", {"plan": "business"})
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert stripe_call(ls, "GET", f"/v1/subscriptions/{sub['id']}")["items"]["data"][0]["plan"]["id"] == "price_business_month"
    s = wait_sub(owner, lambda s: s["plan"] == "business")
    r = owner.post("/billing/portal")
    assert r.status_code == 200 and r.json()["url"].startswith("https://billing.stripe.com/"), r.text
    assert f"customer={customer}" in [b for m, p, b, _ in front.requests if p == "/v1/billing_portal/sessions"][0]

    # Payment fails → past_due (plan kept during the grace period) → restricted after it → paid → active.
    payload = fixture_event("event_invoice_payment_failed.json", customer=customer, subscription=sub["id"])
    assert post_webhook(stack, payload, sign(payload)).status_code == 200
    s = owner.get("/billing/subscription").json()
    assert s["status"] == "past_due" and s["restricted"] is False and s["limits"]["connections"] == 25
    psql(stack, f"UPDATE billing.subscriptions SET past_due_since = now() - interval '8 days' WHERE tenant_id = '{t}'")
    s = owner.get("/billing/subscription").json()
    assert s["status"] == "past_due" and s["restricted"] is True and s["limits"]["connections"] == 1
    payload = fixture_event("event_invoice_paid.json", customer=customer, subscription=sub["id"])
    assert post_webhook(stack, payload, sign(payload)).status_code == 200
    s = owner.get("/billing/subscription").json()
    assert s["status"] == "active" and s["restricted"] is False and s["limits"]["connections"] == 25

    # A downgrade waits for the period end, then changes the Stripe subscription's plan too.
    r = owner.post("/billing/checkout", {"plan": "pro"})
    assert r.status_code == 200 and r.json()["status"] == "scheduled", r.text
    assert stripe_call(ls, "GET", f"/v1/subscriptions/{sub['id']}")["items"]["data"][0]["plan"]["id"] == "price_business_month"
    psql(stack, f"UPDATE billing.subscriptions SET scheduled_at = now() - interval '1 second' WHERE tenant_id = '{t}'")
    s = wait_sub(owner, lambda s: s["plan"] == "pro" and s["scheduled_plan"] is None)
    assert stripe_call(ls, "GET", f"/v1/subscriptions/{sub['id']}")["items"]["data"][0]["plan"]["id"] == "price_pro_month"

    # Stripe deletes the subscription (localstripe sends customer.subscription.deleted): canceled, free.
    stripe_call(ls, "DELETE", f"/v1/subscriptions/{sub['id']}")
    s = wait_sub(owner, lambda s: s["status"] == "canceled")
    assert s["plan"] == "free" and s["limits"]["connections"] == 1
    payload = fixture_event("event_subscription_deleted.json", tenant=t, customer=customer, subscription=sub["id"])
    assert post_webhook(stack, payload, sign(payload)).status_code == 200
    hist = psql(stack, f"SELECT string_agg(change, ',' ORDER BY id) FROM billing.history WHERE tenant_id = '{t}'")
    assert "stripe:customer.subscription.created" in hist and "stripe:invoice.payment_failed" in hist and "stripe:customer.subscription.deleted" in hist


def test_a_plan_change_reaches_the_gateway_at_once(stack, signup):
    """A gateway caching plan limits for an hour still applies an upgrade at once: billing's
    subscription_updated event drops the workspace's cached limits on every gateway replica."""
    port = free_port()
    stack.spawn("gateway", name="gateway-plans", VIGIL_HTTP_PORT=str(port), VIGIL_PLAN_LIMITS_CACHE_SECONDS="3600")
    wait_port(port, 60)
    owner, _, _ = signup("plancache")
    set_plan(stack, owner, "free")
    cached = Client(f"http://127.0.0.1:{port}", token=owner.token)
    codes = [cached.get("/billing/subscription").status_code for _ in range(125)]
    assert codes[:100].count(200) == 100 and codes[-1] == 429, codes  # free: 120 a minute, cached for an hour
    r = owner.post("/billing/checkout", {"plan": "business"})  # through the other gateway; applies at once
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    deadline = time.time() + 5
    while time.time() < deadline and cached.get("/billing/subscription").status_code == 429:
        time.sleep(0.1)
    r = cached.get("/billing/subscription")
    assert r.status_code == 200 and r.json()["plan"] == "business", r.text
    stack.procs["gateway-plans"].terminate()
    stack.procs["gateway-plans"].wait(10)
