"""The gateway's edge behaviour: isolation, bad input, limits, idempotency, discovery, contracts."""
import json
import os
import uuid

import requests
import yaml

from conftest import ROOT, Client, assert_envelope, email_to, unique_email

OPENAPI = yaml.safe_load(open(os.path.join(ROOT, "contracts", "openapi.yaml")))


def routes():
    for path, ops in OPENAPI["paths"].items():
        for method in ops:
            if method in ("get", "post", "patch", "put", "delete"):
                yield method.upper(), path


def fill(path, value):
    out = []
    for part in path.split("/"):
        out.append(value if part.startswith("{") else part)
    return "/".join(out)


def test_tenant_isolation_every_resource_id_of_a_is_404_for_b(stack, anon, signup):
    a, ab, _ = signup("tenant-a")
    b, bb, _ = signup("tenant-b")
    key_a = a.post("/api-keys/", {"name": "a"}).json()
    inv_a = a.post("/invitations/", {"email": unique_email("a-invitee")}).json()
    team_a = a.get("/users/team").json()["items"][0]["membership_id"]
    b_key = b.post("/api-keys/", {"name": "b"}).json()["key"]
    for client in (b, Client(stack.url, api_key=b_key)):
        assert_envelope(client.delete(f"/api-keys/{key_a['id']}"), 404)
        assert_envelope(client.delete(f"/invitations/{inv_a['id']}"), 404)
        assert_envelope(client.post(f"/invitations/{inv_a['id']}/resend"), 404)
        assert_envelope(client.patch(f"/users/team/{team_a}/role", {"role": "viewer"}), 404)
        assert_envelope(client.delete(f"/users/team/{team_a}"), 404)
        # Selecting A's workspace by slug is 404 too (no slug enumeration).
        assert_envelope(client.as_(slug=ab["workspace"]["slug"]).get("/tenants/current"), 404)
        # Lists never show A's rows.
        assert key_a["id"] not in client.get("/api-keys/").text
        assert inv_a["id"] not in client.get("/invitations/").text
        assert team_a not in client.get("/users/team").text
    # A's things are intact.
    assert Client(stack.url, api_key=key_a["key"]).get("/me").status_code == 200
    assert a.post(f"/invitations/{inv_a['id']}/resend").status_code == 200


def test_bad_input_on_every_route_is_a_4xx_envelope(stack, signup):
    owner, ob, _ = signup("fuzz")
    bad_bodies = [b"{not json", b"[1,2,3]", b'"a string"', b"null", json.dumps({"email": 5, "password": [],
                  "name": {"x": 1}, "role": 7, "scopes": "read", "limit": "x", "refresh_token": 1, "token": None}).encode(),
                  b"\xff\xfe\x00", json.dumps({"full_name": "x" * 5000}).encode()]
    ids = [str(uuid.uuid4()), "not-a-uuid", "..%2F..%2Fetc", "vin_" + "z" * 43]
    checked = 0
    for method, path in routes():
        for ident in ids:
            url = fill(path, ident)
            for body in bad_bodies if method != "GET" else [None]:
                for client in (owner, Client(stack.url)):
                    r = client.call(method, url[len("/api/v1"):] if url.startswith("/api/v1") else url, raw=body,
                                    headers={"content-type": "application/json"})
                    checked += 1
                    assert r.status_code < 500, f"{method} {url} body={body!r}: {r.status_code} {r.text}"
                    if r.status_code >= 400:
                        assert_envelope(r, r.status_code)
        # Query strings of the wrong type.
        if method == "GET":
            r = owner.call(method, fill(path, ids[0])[len("/api/v1"):] + "?limit=abc&offset=-1&cursor=%00")
            assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text}"
    assert checked > 300


def test_oversized_body_unknown_route_and_correlation_id(stack):
    limited = Client(stack.limited_url)
    big = json.dumps({"email": "a@example.com", "password": "x" * 5000}).encode()
    assert_envelope(limited.post("/auth/login", raw=big, headers={"content-type": "application/json"}), 413, "payload_too_large")
    r = requests.get(stack.url + "/api/v1/does-not-exist", headers={"x-correlation-id": "abc-123"})
    body = assert_envelope(r, 404, "not_found")
    assert body["correlation_id"] == "abc-123"
    # A hostile correlation id is replaced, not echoed.
    r = requests.get(stack.url + "/api/v1/does-not-exist", headers={"x-correlation-id": "<script>"})
    assert r.headers["x-correlation-id"] != "<script>"


def test_correlation_id_travels_on_the_bus(stack, signup):
    owner, _, _ = signup("corr")
    r = owner.post("/api-keys/", {"name": "c"}, headers={"x-correlation-id": "trace-me-42"})
    assert r.status_code == 201 and r.headers["x-correlation-id"] == "trace-me-42"


def test_rate_limit_answers_429_with_retry_after(stack, signup):
    _, body, _ = signup("limited")
    c = Client(stack.limited_url, token=body["access_token"])
    statuses = []
    for _ in range(12):
        r = c.get("/auth/me")
        statuses.append(r.status_code)
        if r.status_code == 200:
            assert int(r.headers["RateLimit-Remaining"]) >= 0 and r.headers["X-RateLimit-Limit"]
    assert 429 in statuses and statuses[0] == 200
    r = c.get("/auth/me")
    assert_envelope(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    # Another credential has its own budget.
    _, other, _ = signup("unlimited")
    assert Client(stack.limited_url, token=other["access_token"]).get("/auth/me").status_code == 200


def test_idempotency_replays_and_conflicts(stack, signup):
    owner, _, _ = signup("idem")
    h = {"Idempotency-Key": "create-key-" + uuid.uuid4().hex}
    first = owner.post("/api-keys/", {"name": "once"}, headers=h)
    assert first.status_code == 201
    again = owner.post("/api-keys/", {"name": "once"}, headers=h)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len([k for k in owner.get("/api-keys/").json()["items"] if k["name"] == "once"]) == 1
    assert_envelope(owner.post("/api-keys/", {"name": "different"}, headers=h), 409, "idempotency_key_reused")
    # Failures are replayed too (a 4xx is a final answer).
    h2 = {"Idempotency-Key": uuid.uuid4().hex}
    original = assert_envelope(owner.post("/api-keys/", {"name": ""}, headers=h2), 422)
    replay = owner.post("/api-keys/", {"name": ""}, headers=h2)
    assert replay.status_code == 422 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == original  # the first answer, verbatim (its correlation id included)
    # The same key from another workspace is independent.
    other, _, _ = signup("idem2")
    assert other.post("/api-keys/", {"name": "once"}, headers=h).status_code == 201


def test_discovery_health_status_metrics_openapi(stack):
    pings = stack.bus.gather("$SRV.PING", 0.5)
    names = [p["name"] for p in pings]
    assert names.count("identity") == 2  # two replicas
    assert set(names) >= {"gateway", "identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"}
    assert all(p["type"] == "io.nats.micro.v1.ping_response" for p in pings)
    stats = stack.bus.gather("$SRV.STATS.identity", 0.5)
    assert len(stats) == 2 and all("endpoints" in s for s in stats)
    served = sum(e["num_requests"] for s in stats for e in s["endpoints"])
    assert served > 0
    health = requests.get(stack.url + "/health").json()
    assert health["status"] == "ok" and health["dependencies"] == {"nats": "up", "postgres": "up"}, health
    st = requests.get(stack.url + "/status").json()
    assert st["status"] == "ok" and st["api_version"] == "v1" and st["version"]
    m = requests.get(stack.url + "/metrics").text
    assert "vigil_gateway_requests_total" in m
    doc = requests.get(stack.url + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1") and doc["paths"] == json.loads(json.dumps(OPENAPI["paths"]))


def test_openapi_matches_the_routes_the_gateway_serves(stack):
    """Every documented route is served (never 404 'no route'), and every reference route is documented."""
    documented = set(routes())
    for method, path in documented:
        r = requests.request(method, stack.url + fill(path, str(uuid.uuid4())), json={}, timeout=10)
        assert not (r.status_code == 404 and r.json().get("message", "").startswith("no route")), (method, path)
    ref = open(os.path.join(ROOT, "..", "shared", "reference", "fixmycloud-routes.txt")).read().split("\n") \
        if os.path.exists(os.path.join(ROOT, "..", "shared", "reference", "fixmycloud-routes.txt")) else []
    groups = ("/api/v1/auth/", "/api/v1/users/", "/api/v1/tenants/", "/api/v1/api-keys/", "/api/v1/invitations/",
              "/api/v1/webhooks/")
    for line in ref:
        if not line.strip():
            continue
        method, path = line.split()[:2]
        if path.startswith(groups):
            assert (method, path) in documented, f"reference route {method} {path} missing from openapi.yaml"


def test_events_and_emails_validate_against_their_schemas(stack, signup):
    import jsonschema
    owner, _, _ = signup("schemas")
    key = owner.post("/api-keys/", {"name": "s"}).json()["key"]
    schemas_dir = os.path.join(ROOT, "contracts", "schemas")
    asyncapi = yaml.safe_load(open(os.path.join(ROOT, "contracts", "asyncapi.yaml")))
    documented = {ch["address"] for ch in asyncapi["channels"].values()}
    envelope = json.load(open(os.path.join(schemas_dir, "event-envelope.json")))
    seen = stack.bus.received("vigil.")
    assert any(s == "vigil.events.apikey.created" for s, _, _ in seen)
    for subject, headers, body in seen:
        assert subject in documented, f"{subject} is not in asyncapi.yaml"
        jsonschema.validate(body, envelope)
        name = subject.replace("vigil.events.", "event.").replace("vigil.jobs.", "job.") + ".json"
        schema = json.load(open(os.path.join(schemas_dir, name)))
        jsonschema.validate(body["data"], schema)
        assert headers.get("Nats-Msg-Id") == body["id"]
        # No secret ever rides in an event (emails carry their own single-use link by design).
        if subject.startswith("vigil.events."):
            text = json.dumps(body)
            assert key not in text and "password\":" not in text and "vrt_" not in text and "$argon2" not in text


def test_every_contract_schema_is_a_valid_json_schema():
    import jsonschema
    schemas_dir = os.path.join(ROOT, "contracts", "schemas")
    for name in sorted(os.listdir(schemas_dir)):
        jsonschema.Draft202012Validator.check_schema(json.load(open(os.path.join(schemas_dir, name))))


def test_every_served_subject_is_in_the_contracts(stack):
    asyncapi = yaml.safe_load(open(os.path.join(ROOT, "contracts", "asyncapi.yaml")))
    documented = {ch["address"] for ch in asyncapi["channels"].values()}
    infos = stack.bus.gather("$SRV.INFO", 0.5)
    subjects = {e["subject"] for i in infos for e in i.get("endpoints", [])}
    assert "vigil.identity.auth.signup" in subjects
    missing = subjects - documented
    assert not missing, f"served but not documented: {sorted(missing)}"
    for subject in subjects:
        for kind in ("request", "reply"):
            assert os.path.exists(os.path.join(ROOT, "contracts", "schemas", f"{subject}.{kind}.json")), (subject, kind)


def test_services_enforce_each_routes_role_on_direct_bus_calls(stack, signup):
    """Another program on the bus gets the same answer as a REST caller: the role a route declares is
    checked by the service's responder, not only by the gateway."""
    owner, _, _ = signup("bus-roles")
    me = owner.get("/auth/me").json()
    tenant = me["workspace"]["id"]

    def call(subject, body, role=None):
        headers = {"Vigil-Tenant-Id": tenant, "Vigil-Correlation-Id": os.urandom(8).hex()}
        if role:
            headers["Vigil-Principal"] = json.dumps({
                "kind": "user", "user_id": me["user"]["id"], "tenant_id": tenant, "tenant_slug": me["workspace"]["slug"],
                "role": role, "scopes": ["read", "write", "admin"]})

        async def go():
            return await stack.bus.nc.request(subject, json.dumps(body).encode(), timeout=5, headers=headers)
        m = stack.bus.run(go())
        return (m.headers or {}).get("Nats-Service-Error-Code"), json.loads(m.data)

    # Admin-only writes: 403 below admin, 401 without a principal, whichever service answers.
    for subject, body in (("vigil.scans.connection.create", {"name": "x", "provider": "aws"}),
                          ("vigil.notifier.webhook.create", {"url": "https://example.invalid/hook"}),
                          ("vigil.findings.rule.create", {"id": "x"}),
                          ("vigil.identity.tenant.update", {"name": "renamed"})):
        code, reply = call(subject, body, role="analyst")
        assert code == "403" and reply["error"] == "forbidden", (subject, reply)
        code, reply = call(subject, body)
        assert code == "401", (subject, reply)
    # Viewer reads pass; the billing role is below viewer for security data.
    code, reply = call("vigil.findings.finding.summary", {}, role="viewer")
    assert code is None and "total" in reply, reply
    code, reply = call("vigil.findings.finding.summary", {}, role="billing")
    assert code == "403", reply
    # Member routes take any role.
    code, reply = call("vigil.identity.tenant.get", {}, role="billing")
    assert code is None and reply["id"] == tenant, reply


def test_every_reference_route_and_parameter_is_served(stack, signup):
    """Drop-in compatibility: the FixMyCloud reference's 103 routes and every query parameter they name
    are in the served OpenAPI document, and the parameters the reference uses in its own way work."""
    import re
    served = requests.get(stack.url + "/api/v1/openapi.json", timeout=10).json()["paths"]
    norm = lambda p: re.sub(r"\{[^}]+\}", "{}", p.rstrip("/"))
    ours = {(m, norm(p)): op for p, ops in served.items() for m, op in ops.items()}
    routes = {}
    for line in open(os.path.join(os.path.dirname(__file__), "fixtures", "fixmycloud-routes.txt")):
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        routes[(parts[0].lower(), norm(parts[1]))] = parts[2].split(",") if len(parts) > 2 else []
    assert len(routes) == 103
    for key, params in routes.items():
        assert key in ours, key
        names = {p["name"] for p in ours[key].get("parameters", []) if p.get("in") == "query"}
        assert set(params) <= names, (key, set(params) - names)
    owner, _, _ = signup("dropin")
    r = owner.post("/reports/generate?report_type=executive_summary")
    assert r.status_code == 200 and r.json()["type"] == "executive_summary", r.text
    assert_envelope(owner.post("/reports/generate?report_type=poem"), 422)
    assert [x["type"] for x in owner.get("/reports/?report_type=executive_summary").json()["items"]] == ["executive_summary"]
    assert owner.get("/reports/?report_type=compliance").json()["items"] == []
    assert owner.get("/rules/?source=custom").json()["total"] == 0
    assert owner.get("/rules/?status=enabled&source=builtin").json()["total"] >= 150
    assert owner.get("/rules/?status=disabled").json()["total"] == 0
    assert_envelope(owner.get("/rules/?status=maybe"), 422)
    # The documented bounds are the enforced ones (the OpenAPI document says 500 for these two lists, 200 elsewhere).
    doc = OPENAPI
    for path, route in (("/api/v1/rules/", "/rules/"), ("/api/v1/findings/", "/findings/"), ("/api/v1/scans/", "/scans/")):
        top = next(p["schema"]["maximum"] for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert owner.get(f"{route}?limit={top}").status_code == 200
        assert_envelope(owner.get(f"{route}?limit={top + 1}"), 422)
    s = owner.get("/compliance/score?framework=cis_debian_12").json()
    assert [f["framework_id"] for f in s["frameworks"]] == ["cis_debian_12"]
    assert_envelope(owner.get("/compliance/score?framework=hipaa"), 422)
    rep = owner.get("/compliance/report?framework=soc2").json()
    assert [f["framework"]["id"] for f in rep["frameworks"]] == ["soc2"]
