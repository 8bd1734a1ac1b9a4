"""Tenant isolation, generated from the route table: workspace A owns one resource of every kind it can make
through the API; workspace B (owner of its own workspace) calls every route of the OpenAPI document that takes
an id with A's ids — GET and DELETE must answer 404, changes 404 (or 422 when the body is refused first), never
2xx, never a 5xx. A new route is covered without writing a test: ids it takes that A has no resource for are
tried with a random UUID (a 404 then, still never a 5xx). Afterwards A still sees all of its resources."""
import os
import re
import subprocess
import time
import uuid

import yaml

from conftest import ROOT, Client, join_workspace

DOC = yaml.safe_load(open(os.path.join(ROOT, "contracts", "openapi.yaml")))
# Routes that are not about a workspace's resources: public tokens (invitation and reset links), the connector
# API (a connector's own credential), the compliance frameworks (global), the Stripe webhook.
# Not workspace data: public or pre-auth flows, and the platform's operations routes (403 to anyone outside the
# platform workspace, tested in test_ops).
SKIP = re.compile(r"/(invitations/(check|accept)|auth/|connector-api/|compliance/frameworks|billing/webhooks|users/verify|ops/)")


def schema(s):
    while isinstance(s, dict) and "$ref" in s:
        s = DOC["components"]["schemas"][s["$ref"].split("/")[-1]]
    return s or {}


def sample(s):
    """A value of the schema's type (required properties filled), so most requests pass validation and reach the lookup."""
    s = schema(s)
    if "anyOf" in s:
        return sample(next(x for x in s["anyOf"] if x.get("type") != "null"))
    if "enum" in s:
        return s["enum"][0]
    t = s.get("type")
    if t == "object":
        return {k: sample(v) for k, v in s.get("properties", {}).items() if k in s.get("required", [])}
    if t == "array":
        return [sample(s["items"])] if s.get("minItems") else []
    if t == "integer":
        return max(1, s.get("minimum", 1))
    if t == "number":
        return 1
    if t == "boolean":
        return False
    fmt = s.get("format")
    return {"uuid": str(uuid.uuid4()), "email": "x@example.com", "uri": "https://example.com/", "date-time": "2030-01-01T00:00:00Z"}.get(
        fmt, "x" * max(1, s.get("minLength", 1)))


def workspace_a(stack, signup, tmp):
    """Workspace A with a resource of every kind the API lets it make; returns (owner client, {param: id})."""
    owner, _, _ = signup("iso-a")
    ids = {}

    def made(r):
        assert r.status_code in (200, 201, 202), r.text
        return r.json()["id"]
    repo = os.path.join(tmp, "a-repo")
    os.makedirs(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@a", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@a")
    with open(os.path.join(repo, "app.py"), "w") as f:
        f.write('STRIPE = "sk_live_' + uuid.uuid4().hex[:24] + '"\n')
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-C", repo, *args], check=True, env=env)
    r = owner.post("/repositories", {"clone_url": f"file://{repo}"}).json()
    ids["repository_id"] = ids["connection_id"] = r["id"]
    batch = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "secrets_scan"}).json()
    ids["scan_id"] = batch["id"]
    deadline = time.time() + 60
    while time.time() < deadline and not owner.get(f"/repositories/{r['id']}/scans/{batch['id']}").json()["findings_ingested"]:
        time.sleep(0.3)
    ids["finding_id"] = owner.get(f"/repositories/{r['id']}/findings").json()["items"][0]["id"]
    ids["fix_id"] = made(owner.post(f"/repositories/{r['id']}/fixes", {"title": "t", "instructions": "i", "finding_ids": [ids["finding_id"]]}))
    ids["schedule_id"] = made(owner.post("/schedules/", {"name": "nightly", "connection_id": r["id"], "cron": "0 9 * * *"}))
    ids["proxy_id"] = made(owner.post("/proxies/", {"name": "egress", "url": "http://127.0.0.1:3128/"}))
    ids["endpoint_id"] = made(owner.post("/webhooks/endpoints", {"url": "http://127.0.0.1:9/a", "events": ["finding.opened"]}))
    ids["domain_id"] = made(owner.post("/domains/", {"domain": f"a-{uuid.uuid4().hex[:6]}.example.com"}))
    ids["key_id"] = made(owner.post("/api-keys/", {"name": "a"}))
    ids["invitation_id"] = made(owner.post("/invitations/", {"email": f"inv-{uuid.uuid4().hex[:6]}@example.com", "role": "viewer"}))
    ids["channel_id"] = made(owner.post("/notifications/channels", {"name": "mail", "method": "email", "events": ["scan.completed"],
                                                              "config": {"to": [f"iso-{uuid.uuid4().hex[:6]}@vigil.test"]}}))
    ids["enrollment_id"] = made(owner.post("/connectors/enrollments", {"name": "lab"}))
    ids["suppression_id"] = made(owner.post("/findings/suppression-rules", {"name": "s", "rule": "aws.s3.*", "reason": "why"}))
    ids["rule_id"] = owner.post("/rules/", {"id": f"custom.iso_{uuid.uuid4().hex[:6]}", "title": "A's rule", "severity": "low",
                                           "resource_type": "aws.s3.bucket", "condition": {"path": "name", "op": "eq", "value": "x"}}).json()["id"]
    ids["report_id"] = made(owner.post("/reports/generate", {"type": "findings_export", "format": "json"}))
    member = join_workspace(stack, owner, "viewer")
    ids["membership_id"] = next(m["membership_id"] for m in owner.get("/users/team").json()["items"] if m["role"] == "viewer")
    assert member.get("/auth/me").status_code == 200
    return owner, ids


def test_every_route_with_an_id_is_isolated(stack, signup, tmp_path):
    owner_a, ids = workspace_a(stack, signup, str(tmp_path))
    owner_b, _, _ = signup("iso-b")
    checked, unknown, problems = 0, set(), []
    for path, ops in DOC["paths"].items():
        if "{" not in path or SKIP.search(path):
            continue
        params = re.findall(r"\{([a-z_]+)\}", path)
        for p in params:
            if p not in ids:
                unknown.add(p)
        url = path.replace("/api/v1", "")
        for p in params:
            url = url.replace("{" + p + "}", ids.get(p, str(uuid.uuid4())))
        for method, op in ops.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = None
            if "requestBody" in op:
                body = sample(op["requestBody"]["content"].get("application/json", {}).get("schema", {}))
            r = owner_b.call(method.upper(), url, body)
            checked += 1
            allowed = {404} if method in ("get", "delete") else {404, 422}
            if r.status_code not in allowed:
                problems.append((method.upper(), path, r.status_code, r.text[:200]))
    assert not problems, problems
    assert checked >= 70, checked
    assert unknown <= {"action_id", "connector_id", "job_id", "delivery_id", "token", "framework_id"}, unknown
    # A's resources are all still there (nothing B sent reached them).
    for path in [f"/repositories/{ids['repository_id']}", f"/repositories/{ids['repository_id']}/fixes/{ids['fix_id']}",
                 f"/findings/{ids['finding_id']}", f"/schedules/{ids['schedule_id']}", f"/proxies/{ids['proxy_id']}",
                 f"/domains/{ids['domain_id']}", f"/rules/{ids['rule_id']}", f"/reports/{ids['report_id']}", f"/scans/{ids['scan_id']}"]:
        assert owner_a.get(path).status_code == 200, path
    assert ids["endpoint_id"] in owner_a.get("/webhooks/endpoints").text and ids["key_id"] in owner_a.get("/api-keys/").text
    print(f"isolation sweep: {checked} calls over every route with an id; ids without an A resource: {sorted(unknown)}")
