"""Web targets: passive scans of local sites (Tests/e2e/websites.py) with planted issues of every
category, found; their correctly configured twin with decoys, clean; TLS endpoints with self-signed,
expired, wrong-host and legacy certificates; the SSRF guard; a hostile site that cannot stall a scan;
bad input."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, assert_envelope
from test_scans import all_results, trigger, wait_scan

PLANTED = {
    "web.transport.http_serves_content", "web.tls.no_tls13", "web.tls.broken_cipher_suites", "web.tls.static_rsa_key_exchange",
    "web.tls.cbc_sha1_suites", "web.tls.no_ocsp_stapling",
    "web.headers.hsts_short_max_age", "web.headers.hsts_no_include_subdomains", "web.headers.csp_unsafe_inline",
    "web.headers.csp_script_wildcard", "web.headers.x_content_type_options_missing", "web.headers.clickjacking",
    "web.headers.referrer_policy_unsafe", "web.headers.permissions_policy_missing", "web.headers.coop_missing", "web.headers.corp_missing",
    "web.headers.version_banner",
    "web.cookies.no_secure", "web.cookies.no_httponly", "web.cookies.no_samesite", "web.cookies.prefix_violation",
    "web.cors.reflected_origin_with_credentials", "web.cors.null_origin", "web.cors.crossdomain_policy_wildcard",
    "web.exposure.git", "web.exposure.env_file", "web.exposure.backup", "web.exposure.database_dump", "web.exposure.config_backup",
    "web.exposure.server_status", "web.exposure.directory_listing", "web.exposure.ds_store", "web.exposure.admin_panel",
    "web.exposure.debug_endpoint", "web.exposure.source_map",
    "web.content.mixed_content", "web.secrets.cloud_key", "web.secrets.payment_key", "web.secrets.private_key", "web.secrets.vcs_token",
    "web.secrets.saas_token", "web.secrets.jwt", "web.secrets.connection_url",
}
TLS_ENDPOINTS = {
    "self_signed": {"web.tls.self_signed"},
    "expired": {"web.tls.expired"},
    "wrong_host": {"web.tls.hostname_mismatch", "web.tls.expiring_soon"},
    "legacy": {"web.tls.legacy_protocol", "web.tls.weak_key", "web.tls.weak_signature", "web.tls.no_tls13", "web.tls.static_rsa_key_exchange",
               "web.tls.cbc_sha1_suites", "web.tls.no_forward_secrecy"},
}


@pytest.fixture(scope="module")
def sites():
    d = tempfile.mkdtemp(prefix="vigil-sites-")
    proc = subprocess.Popen(["python3", os.path.join(ROOT, "Tests", "e2e", "websites.py"), d], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "sites.log"), "wb"))
    try:
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(d, "sites.json")):
            assert proc.poll() is None and time.time() < deadline, open(os.path.join(d, "sites.log")).read()
            time.sleep(0.1)
        s = json.load(open(os.path.join(d, "sites.json")))
        s["ca_text"] = open(s["ca_pem"]).read()
        yield s
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def web_connection(client, site, ca=None, **extra):
    settings = {"url": site["url"], **({"http_port": site["http_port"]} if "http_port" in site else {}), **extra}
    if ca:
        settings["ca_pem"] = ca
    r = client.post("/connections/", {"name": "site", "provider": "web", "settings": settings})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def scan_site(client, conn, timeout=120):
    scan = wait_scan(client, trigger(client, conn), timeout=timeout)
    assert scan["status"] == "completed", scan
    results = all_results(client, scan["id"])
    return scan, {r["rule_id"] for r in results if r["status"] == "FAIL"}, results


def test_planted_site_every_category_found_and_twin_clean(stack, signup, sites):
    owner, _, _ = signup("webscan")
    planted = web_connection(owner, sites["planted"], sites["ca_text"])
    twin = web_connection(owner, sites["twin"], sites["ca_text"])
    t = owner.post(f"/connections/{twin}/test")
    assert t.status_code == 200 and t.json()["ok"] is True, t.text

    scan, failing, results = scan_site(owner, planted)
    missing = PLANTED - failing
    assert not missing, f"missing {sorted(missing)}; found {sorted(failing)}"
    assert scan["complete"] is True and scan["resources_scanned"] >= 10
    # Evidence: secrets only as redacted previews; exposures name the URL that proved them.
    secrets = [r for r in results if r["status"] == "FAIL" and r["rule_id"].startswith("web.secrets.")]
    text = json.dumps(secrets, ensure_ascii=False)
    from websites import AWS_SECRET, STRIPE, GHP, SLACK, SERVICE_JWT
    for value in (AWS_SECRET, STRIPE, GHP, SLACK, SERVICE_JWT):
        assert value not in text, "a secret leaked into a result"
    assert "…" in text
    git = next(r for r in results if r["rule_id"] == "web.exposure.git" and r["status"] == "FAIL")
    assert "/.git/" in json.dumps(git["evidence"])

    scan, failing, results = scan_site(owner, twin)
    assert not failing, f"the correctly configured twin was flagged: {sorted(failing)}"
    assert scan["complete"] is True and scan["checks_evaluated"] >= 40

    # Findings of a web scan flow like any provider's: rule ids, severities and compliance.
    deadline = time.time() + 20
    while time.time() < deadline:
        found = owner.get(f"/findings/?connection_id={planted}&limit=200").json()
        if found["total"] >= len(PLANTED):
            break
        time.sleep(0.3)
    assert {f["rule_code"] if "rule_code" in f else f["rule_id"] for f in found["items"]} >= {"web.exposure.git", "web.secrets.cloud_key"}


@pytest.mark.parametrize("name", sorted(TLS_ENDPOINTS))
def test_tls_endpoints(stack, signup, sites, name):
    owner, _, _ = signup("webtls")
    conn = web_connection(owner, sites[name], None if name == "self_signed" else sites["ca_text"])
    _, failing, _ = scan_site(owner, conn)
    expected = TLS_ENDPOINTS[name]
    assert expected <= failing, f"{name}: missing {sorted(expected - failing)}; found {sorted(failing)}"
    tls = {f for f in failing if f.startswith("web.tls.")}
    others = {"self_signed", "expired", "hostname_mismatch", "untrusted_chain", "expiring_soon", "legacy_protocol", "weak_key", "weak_signature"}
    unexpected = {f for f in tls if f.split(".")[-1] in others} - expected
    assert not unexpected, f"{name}: flagged {sorted(unexpected)}"


def test_without_the_private_ca_the_chain_is_untrusted(stack, signup, sites):
    owner, _, _ = signup("webca")
    conn = web_connection(owner, sites["twin"])
    _, failing, _ = scan_site(owner, conn)
    assert "web.tls.untrusted_chain" in failing and "web.tls.self_signed" not in failing


def test_hostile_site_cannot_stall_a_scan(stack, signup, sites):
    owner, _, _ = signup("webhostile")
    conn = web_connection(owner, sites["hostile"])
    started = time.time()
    scan = wait_scan(owner, trigger(owner, conn), timeout=120)
    elapsed = time.time() - started
    assert scan["status"] in ("completed", "failed"), scan
    # The scan's own limit is 30 s (VIGIL_WEB_SCAN_SECONDS); a worker is never held much past it.
    assert elapsed < 60, elapsed
    # The worker is free again: the next scan of a normal site completes.
    twin = web_connection(owner, sites["twin"], sites["ca_text"])
    assert scan_site(owner, twin)[0]["status"] == "completed"


def test_web_connection_input_and_ssrf(stack, signup, sites):
    owner, _, _ = signup("webinput")
    for settings, path in [({"url": "not a url"}, "body.settings.url"), ({"url": "ftp://127.0.0.1/"}, "body.settings.url"),
                           ({"url": "https://user:pw@127.0.0.1/"}, "body.settings.url"), ({}, "body.settings.url"),
                           ({"url": sites["twin"]["url"], "ca_pem": "x" * 70000}, "body.settings.ca_pem"),
                           ({"url": sites["twin"]["url"], "ca_pem": "-----BEGIN PRIVATE KEY-----"}, "body.settings.ca_pem"),
                           ({"url": sites["twin"]["url"], "headers": {"Bad\nName": "x"}}, "body.settings.headers"),
                           ({"url": sites["twin"]["url"], "scan_paths": ["no-slash"]}, "body.settings.scan_paths"),
                           ({"url": "http://169.254.169.254/latest/meta-data/"}, "body.settings.url"),
                           ({"url": "http://10.1.2.3/"}, "body.settings.url")]:
        r = owner.post("/connections/", {"name": "x", "provider": "web", "settings": settings})
        assert_envelope(r, 422)
        assert path in r.text, (settings, r.text)


def test_loopback_refused_without_the_setting_also_by_name_and_at_scan_time(stack, signup, sites):
    """With VIGIL_WEB_ALLOW_LOOPBACK off, a loopback URL and a DNS name for loopback are refused, and a
    connection saved while it was allowed fails its scan (the address is checked when connecting)."""
    owner, _, _ = signup("webssrf")
    conn = web_connection(owner, sites["twin"], sites["ca_text"])
    try:
        stack.restart("scan-orchestrator", VIGIL_WEB_ALLOW_LOOPBACK="false")
        for url in (sites["twin"]["url"], sites["twin"]["url"].replace("127.0.0.1", "localhost")):
            r = owner.post("/connections/", {"name": "x", "provider": "web", "settings": {"url": url}})
            assert_envelope(r, 422)
        # A connection saved while allowed is refused at scan time (each hop is checked when connecting).
        scan = wait_scan(owner, trigger(owner, conn), timeout=60)
        assert scan["status"] == "failed" and "loopback" in (scan.get("error") or ""), scan
    finally:
        stack.restart("scan-orchestrator")


def test_fixvibe_scan_routes_and_finding_filters(stack, signup, sites):
    owner, _, _ = signup("fixvibe")
    other, _, _ = signup("fixvibeother")
    target = sites["planted"]["url"]
    r = owner.post("/scans", {"target": target})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "queued" and body["mode"] == "passive" and body["target"] == target
    # The same target again reuses its web connection.
    again = owner.post("/scans", {"target": target}).json()
    assert again["connection_id"] == body["connection_id"]
    assert len([c for c in owner.get("/connections/").json()["items"] if c["provider"] == "web"]) == 1
    for b, status, path in [({}, 422, "body.target"), ({"target": "ftp://x/"}, 422, "body.settings.url"),
                            ({"target": target, "mode": "loud"}, 422, "body.mode"), ({"target": "http://169.254.169.254/"}, 422, None)]:
        res = owner.post("/scans", b)
        assert_envelope(res, status)
        assert path is None or path in res.text, res.text
    assert_envelope(owner.post("/scans", {"target": target, "mode": "active"}), 403, "active_scan_not_authorized")

    scan = wait_scan(owner, body["id"], timeout=120)
    assert scan["status"] == "completed"
    view = owner.get(f"/scans/{body['id']}").json()
    assert view["target_url"] == target and view["target_hostname"] == "127.0.0.1" and view["mode"] == "passive"
    assert "findings" not in view and view["categories"]["exposure"]["critical"] >= 3 and "tls" in view["categories"]
    full = owner.get(f"/scans/{body['id']}?include_findings=true").json()
    assert len(full["findings"]) == sum(scan["findings_count"].values())
    assert all(f["status"] == "FAIL" for f in full["findings"])
    assert_envelope(other.get(f"/scans/{body['id']}"), 404)

    # Findings: check_id, a severity list and since; FixVibe's field names beside ours.
    deadline = time.time() + 20
    while time.time() < deadline:
        page = owner.get("/findings/?check_id=web.exposure.git,web.secrets.cloud_key&severity=critical,high&limit=50").json()
        if len(page["items"]) >= 2:
            break
        time.sleep(0.3)
    assert all("check_id" in f for f in page["items"]), page["items"][0]
    assert {f["check_id"] for f in page["items"]} == {"web.exposure.git", "web.secrets.cloud_key"}
    assert all(f["severity"] in ("critical", "high") and f["cwe_id"] and f["scan_id"] for f in page["items"])
    future = owner.get("/findings/?check_id=web.exposure.git&since=2999-01-01T00:00:00Z").json()
    assert future["items"] == []
    assert_envelope(owner.get("/findings/?since=yesterday"), 422)
    assert owner.get("/findings/?provider=web&limit=1").json()["total"] >= 30


@pytest.fixture
def private_site():
    """A site on a private address inside a network namespace this test creates (10.77.x.2), which
    redirects to a server on this machine's loopback; yields (site url, loopback server hit counter)."""
    import http.server
    import random
    import threading
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("network namespaces are not available here")
    n = random.randint(1, 250)
    ns, host_if, ns_if = f"vigil-ssrf-{n}", f"vgh{n}", f"vgn{n}"
    hits = []

    class Loopback(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a):
            pass

    loop = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loopback)
    threading.Thread(target=loop.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{loop.server_address[1]}/internal-admin"
    server = ("import http.server\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              f"        self.send_response(302); self.send_header('Location', '{target}'); self.send_header('Content-Length', '0'); self.end_headers()\n"
              "    def log_message(self, *a): pass\n"
              f"http.server.ThreadingHTTPServer(('10.77.{n}.2', 8080), H).serve_forever()\n")
    cmds = [["ip", "netns", "add", ns], ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
            ["ip", "link", "set", ns_if, "netns", ns], ["ip", "addr", "add", f"10.77.{n}.1/30", "dev", host_if], ["ip", "link", "set", host_if, "up"],
            ["ip", "netns", "exec", ns, "ip", "addr", "add", f"10.77.{n}.2/30", "dev", ns_if],
            ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"], ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]]
    proc = None
    try:
        for c in cmds:
            r = subprocess.run(c, capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot build the namespace: {' '.join(c)}: {r.stderr.strip()}")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", server])
        deadline = time.time() + 15
        while time.time() < deadline:
            r = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c",
                                f"import socket; socket.create_connection(('10.77.{n}.2', 8080), 1)"], capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.2)
        yield f"http://10.77.{n}.2:8080/", hits
    finally:
        if proc:
            proc.kill()
            proc.wait(5)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        loop.shutdown()


def test_redirect_to_loopback_is_refused(stack, signup, private_site):
    """A target on an allowed (private) address that redirects to loopback: the hop is checked before
    connecting and refused; the loopback server never sees a request."""
    url, hits = private_site
    owner, _, _ = signup("webredirect")
    try:
        stack.restart("scan-orchestrator", VIGIL_WEB_ALLOW_LOOPBACK="false", VIGIL_WEB_ALLOW_PRIVATE="true")
        r = owner.post("/connections/", {"name": "private", "provider": "web", "settings": {"url": url}})
        assert r.status_code == 201, r.text
        scan = wait_scan(owner, trigger(owner, r.json()["id"]), timeout=60)
        assert scan["status"] == "failed" and "loopback" in (scan.get("error") or ""), scan
        assert hits == []
    finally:
        stack.restart("scan-orchestrator")


def test_domain_verification_gates_active_scans(stack, signup, sites):
    owner, body, _ = signup("webactive")
    other, _, _ = signup("webactiveother")
    twin_host = sites["twin"]["url"].split("//")[1].rstrip("/")
    planted_host = sites["planted"]["url"].split("//")[1].rstrip("/")
    # POST /scans reuses these connections (with the private CA) by URL.
    web_connection(owner, sites["twin"], sites["ca_text"])
    web_connection(owner, sites["planted"], sites["ca_text"])
    for bad in ["https://x.example", "x.example/path", "", "a" * 300, "x.example:99999"]:
        assert_envelope(owner.post("/domains/", {"domain": bad}), 422)
    d = owner.post("/domains/", {"domain": twin_host})
    assert d.status_code == 201, d.text
    dom = d.json()
    assert dom["status"] == "pending" and dom["token"].startswith("vigil-verify-")
    assert dom["methods"]["file"]["url"] == f"https://{twin_host}/.well-known/vigil-verification.txt"
    assert_envelope(owner.post("/domains/", {"domain": twin_host.upper()}), 409)
    assert_envelope(other.get(f"/domains/{dom['id']}"), 404)
    assert_envelope(other.post(f"/domains/{dom['id']}/verify", {}), 404)

    # Not verified yet (no file published): active scans are refused, passive ones are not.
    r = owner.post(f"/domains/{dom['id']}/verify", {})
    assert r.status_code == 200 and r.json()["status"] == "pending" and "404" in r.json()["last_error"], r.text
    assert_envelope(owner.post("/scans", {"target": sites["twin"]["url"], "mode": "active"}), 403, "active_scan_not_authorized")
    assert_envelope(owner.post(f"/domains/{dom['id']}/verify", {"method": "dns_txt"}), 422)
    # A wrong token does not verify.
    site_dir = os.path.dirname(sites["ca_pem"])
    open(os.path.join(site_dir, "verification.txt"), "w").write("vigil-verify-not-the-token\n")
    assert owner.post(f"/domains/{dom['id']}/verify", {}).json()["status"] == "pending"
    open(os.path.join(site_dir, "verification.txt"), "w").write(dom["token"] + "\n")
    r = owner.post(f"/domains/{dom['id']}/verify", {})
    assert r.status_code == 200 and r.json()["status"] == "verified" and r.json()["verified_at"], r.text
    # Verified, but the free plan has no active scans.
    from conftest import psql
    owner.get("/billing/subscription")
    psql(stack, f"UPDATE billing.subscriptions SET plan = 'free', status = 'active' WHERE tenant_id = '{body['workspace']['id']}'")
    r = assert_envelope(owner.post("/scans", {"target": sites["twin"]["url"], "mode": "active"}), 403, "active_scan_not_authorized")
    assert "plan" in r["message"]
    # Another workspace's verification counts for nothing here.
    assert_envelope(other.post("/scans", {"target": sites["twin"]["url"], "mode": "active"}), 403, "active_scan_not_authorized")
    # On a paid plan, an active scan of the verified twin runs its probes and flags nothing; the REST
    # trigger cannot ask for active mode.
    psql(stack, f"UPDATE billing.subscriptions SET plan = 'pro', status = 'active' WHERE tenant_id = '{body['workspace']['id']}'")
    deadline = time.time() + 10
    while time.time() < deadline:
        r = owner.post("/scans", {"target": sites["twin"]["url"], "mode": "active"})
        if r.status_code == 200:
            break
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["mode"] == "active", r.text
    scan = wait_scan(owner, r.json()["id"], timeout=120)
    view = owner.get(f"/scans/{scan['id']}?include_findings=true").json()
    assert view["mode"] == "active" and view["findings"] == [], view
    checks = {x["rule_id"] for x in all_results(owner, scan["id"])}
    assert {"web.active.trace_enabled", "web.active.open_redirect", "web.active.reflected_input"} <= checks
    t = owner.post("/scans/trigger", {"connection_id": r.json()["connection_id"], "mode": "active"})
    assert t.status_code == 202 and owner.get(f"/scans/{t.json()['id']}").json()["mode"] == "passive"

    # The planted site, verified the same way, fails all three probes.
    pd = owner.post("/domains/", {"domain": planted_host}).json()
    psql(stack, f"UPDATE scans.domains SET status = 'verified', verified_at = now() WHERE id = '{pd['id']}'")
    r = owner.post("/scans", {"target": sites["planted"]["url"], "mode": "active"})
    assert r.status_code == 200, r.text
    scan = wait_scan(owner, r.json()["id"], timeout=120)
    failing = {x["rule_id"] for x in all_results(owner, scan["id"], status="FAIL")}
    assert {"web.active.trace_enabled", "web.active.open_redirect", "web.active.reflected_input"} <= failing, failing
    assert owner.delete(f"/domains/{dom['id']}").status_code == 204


def test_web_connections_work_with_schedules_suppressions_and_reports(stack, signup, sites):
    from test_findings import eventually, findings, requests_get
    owner, _, _ = signup("webplatform")
    conn = web_connection(owner, sites["planted"], sites["ca_text"])
    s = owner.post("/schedules/", {"name": "nightly web", "connection_id": conn, "cron": "0 2 * * *", "timezone": "Europe/Berlin"})
    assert s.status_code == 201, s.text
    run = owner.post(f"/schedules/{s.json()['id']}/run-now").json()
    assert run["outcome"] == "started"
    assert wait_scan(owner, run["scan_id"], timeout=120)["status"] == "completed"
    eventually(lambda: len(findings(owner, connection_id=conn, provider="web")) >= len(PLANTED), timeout=30, what="web findings")
    # A suppression rule over web check ids, as for any provider.
    r = owner.post("/findings/suppression-rules", {"name": "info headers", "rule": "web.headers.*", "reason": "tracked elsewhere"})
    assert r.status_code == 201 and r.json()["matched"] >= 5, r.text
    assert all(f["status"] == "suppressed" for f in findings(owner, connection_id=conn, check_id="web.headers.clickjacking"))
    # Reports carry web findings with their compliance controls.
    rep = owner.post("/reports/generate", {"type": "findings_export", "format": "json"}).json()
    items = json.loads(requests_get(owner, rep["id"]).text)["items"]
    assert any(i.get("rule", i.get("rule_code", "")).startswith("web.secrets.") for i in items), items[:2]
    comp = owner.post("/reports/generate", {"type": "compliance", "format": "json"})
    assert comp.status_code == 200 and comp.json()["status"] == "completed", comp.text
