"""Outbound proxy profiles: CRUD with validation, sealed passwords, isolation and audit; scans and
tests of an AWS connection tunnelled through a real HTTP CONNECT proxy (Debian's tinyproxy, with basic
authentication), and proof that nothing goes around it."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import assert_envelope, free_port, join_workspace, psql, wait_port
from test_scans import trigger, wait_scan

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PROXY_PASSWORD = "tunnel-Pa55word-7c1e"


class Tinyproxy:
    """tinyproxy on a random loopback port, requiring `vigil` / PROXY_PASSWORD; its log records every CONNECT."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-proxy-")
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "tinyproxy.log")
        conf = os.path.join(self.dir, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write(f'Port {self.port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{self.log_path}"\nLogLevel Connect\n'
                    f"MaxClients 50\nAllow 127.0.0.1\nDisableViaHeader Yes\nBasicAuth vigil {PROXY_PASSWORD}\n")
        self.proc = subprocess.Popen(["tinyproxy", "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def connects(self, target_port):
        with open(self.log_path, errors="replace") as f:
            return sum(1 for line in f if f"CONNECT 127.0.0.1:{target_port} " in line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def tinyproxy():
    p = Tinyproxy()
    try:
        yield p
    finally:
        p.stop()


def test_proxy_profiles_validate_seal_and_isolate(stack, signup):
    owner, ob, _ = signup("proxyowner")
    other, _, _ = signup("proxyother")
    port = free_port()
    for body, path in [({"url": f"http://127.0.0.1:{port}"}, "body.name"),
                       ({"name": "p"}, "body.url"),
                       ({"name": "p", "url": f"https://127.0.0.1:{port}"}, "body.url"),
                       ({"name": "p", "url": f"socks5://127.0.0.1:{port}"}, "body.url"),
                       ({"name": "p", "url": "http://127.0.0.1:0"}, "body.url"),
                       ({"name": "p", "url": f"http://127.0.0.1:{port}/some/path"}, "body.url"),
                       ({"name": "p", "url": "not a url"}, "body.url"),
                       ({"name": "p", "url": 42}, None),
                       ({"name": "p", "url": f"http://127.0.0.1:{port}", "password": "x"}, "body.password"),
                       ({"name": "p", "url": f"http://127.0.0.1:{port}", "username": "a:b", "password": "x"}, "body.username"),
                       ({"name": "x" * 101, "url": f"http://127.0.0.1:{port}"}, "body.name")]:
        r = owner.post("/proxies/", body)
        assert r.status_code in (400, 422), (body, r.text)
        if path:
            assert path in r.text, (body, r.text)
    # Credentials in the URL are taken apart: the URL keeps only the address, the password is sealed.
    r = owner.post("/proxies/", {"name": "egress", "url": f"http://vigil:{PROXY_PASSWORD}@127.0.0.1:{port}/"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["url"] == f"http://127.0.0.1:{port}" and p["username"] == "vigil" and p["has_password"] is True
    assert_envelope(owner.post("/proxies/", {"name": "egress", "url": f"http://127.0.0.1:{port}"}), 409)
    listed = owner.get("/proxies/").json()
    assert [x["id"] for x in listed["items"]] == [p["id"]] and listed["total"] == 1
    for text in (r.text, owner.get(f"/proxies/{p['id']}").text, owner.get("/proxies/").text):
        assert PROXY_PASSWORD not in text
    assert PROXY_PASSWORD not in psql(stack, f"SELECT row_to_json(p)::text FROM scans.proxies p WHERE id = '{p['id']}'")
    # Another workspace sees nothing and cannot use or change it.
    assert_envelope(other.get(f"/proxies/{p['id']}"), 404)
    assert other.get("/proxies/").json()["items"] == []
    assert_envelope(other.patch(f"/proxies/{p['id']}", {"name": "mine"}), 404)
    assert_envelope(other.delete(f"/proxies/{p['id']}"), 404)
    assert_envelope(other.post(f"/proxies/{p['id']}/test", {}), 404)
    r = other.post("/connections/", {"name": "c", "provider": "aws", "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
                                     "settings": {"proxy_id": p["id"]}})
    assert_envelope(r, 422)
    assert "body.settings.proxy_id" in r.text
    # Roles: a viewer reads, an analyst tests, only admins change.
    viewer = join_workspace(stack, owner, "viewer")
    assert viewer.get(f"/proxies/{p['id']}").status_code == 200
    assert_envelope(viewer.post("/proxies/", {"name": "v", "url": f"http://127.0.0.1:{port}"}), 403)
    assert_envelope(viewer.post(f"/proxies/{p['id']}/test", {}), 403)
    # Patch: removing the username removes the password; an empty patch is refused; bad ids are 404.
    assert_envelope(owner.patch(f"/proxies/{p['id']}", {}), 422)
    r = owner.patch(f"/proxies/{p['id']}", {"username": None})
    assert r.status_code == 200 and r.json().get("username") is None and r.json()["has_password"] is False, r.text
    assert_envelope(owner.patch(f"/proxies/{p['id']}", {"password": "only-a-password"}), 422)
    r = owner.patch(f"/proxies/{p['id']}", {"username": "vigil", "password": PROXY_PASSWORD, "name": "egress-2"})
    assert r.status_code == 200 and r.json()["has_password"] is True and r.json()["name"] == "egress-2", r.text
    assert_envelope(owner.get("/proxies/not-a-uuid"), 404)
    assert_envelope(owner.post("/proxies/00000000-0000-4000-8000-000000000000/test", {}), 404)
    # The test target passes the SSRF guard like an endpoint override (loopback is allowed in tests; metadata never).
    assert_envelope(owner.post(f"/proxies/{p['id']}/test", {"target_url": "http://169.254.169.254/latest/meta-data/"}), 422)
    # Changes are audited, without the password.
    deadline = time.time() + 10
    while time.time() < deadline:
        audit = owner.get("/webhooks/audit-logs?limit=100").json()["items"]
        if {"proxy.created", "proxy.updated"} <= {a["action"] for a in audit}:
            break
        time.sleep(0.2)
    assert {"proxy.created", "proxy.updated"} <= {a["action"] for a in audit}
    assert PROXY_PASSWORD not in str(audit)
    assert owner.delete(f"/proxies/{p['id']}").status_code == 204
    assert_envelope(owner.get(f"/proxies/{p['id']}"), 404)
    for name in stack.procs:
        assert PROXY_PASSWORD not in stack.log(name)


def test_scans_go_through_the_proxy_and_nowhere_else(stack, signup, moto, tinyproxy):
    owner, _, _ = signup("proxyscan")
    moto_port = int(moto.rsplit(":", 1)[1])
    good = owner.post("/proxies/", {"name": "egress", "url": tinyproxy.url, "username": "vigil", "password": PROXY_PASSWORD}).json()
    wrong = owner.post("/proxies/", {"name": "wrong", "url": tinyproxy.url, "username": "vigil", "password": "not-the-password"}).json()

    # The proxy test opens a tunnel to the target and sends one request.
    before = tinyproxy.connects(moto_port)
    t = owner.post(f"/proxies/{good['id']}/test", {"target_url": moto})
    assert t.status_code == 200 and t.json()["ok"] is True and isinstance(t.json()["status_code"], int), t.text
    assert tinyproxy.connects(moto_port) > before
    t = owner.post(f"/proxies/{wrong['id']}/test", {"target_url": moto})
    assert t.status_code == 200 and t.json()["ok"] is False and "proxy refused" in t.json()["message"], t.text
    shown = owner.get(f"/proxies/{wrong['id']}").json()
    assert shown["last_test_ok"] is False and shown["last_tested_at"]

    # A connection naming the profile: its test and its scan reach moto only through the tunnel.
    r = owner.post("/connections/", {"name": "via-proxy", "provider": "aws", "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
                                     "settings": {"regions": ["us-east-1"], "endpoint_url": moto, "proxy_id": good["id"]}})
    assert r.status_code == 201 and r.json()["settings"]["proxy_id"] == good["id"], r.text
    conn = r.json()["id"]
    before = tinyproxy.connects(moto_port)
    t = owner.post(f"/connections/{conn}/test")
    assert t.status_code == 200 and t.json()["ok"] is True, t.text
    scan = wait_scan(owner, trigger(owner, conn, services=["s3", "iam", "ec2"]), timeout=120)
    assert scan["status"] == "completed" and scan["complete"] is True, scan
    assert tinyproxy.connects(moto_port) > before
    assert_envelope(owner.delete(f"/proxies/{good['id']}"), 409, "proxy_in_use")

    # The wrong password fails the connection's test with the proxy's refusal (tinyproxy answers CONNECT with 401, most proxies 407).
    assert owner.patch(f"/connections/{conn}", {"settings": {"regions": ["us-east-1"], "endpoint_url": moto,
                                                             "proxy_id": wrong["id"]}}).status_code == 200
    t = owner.post(f"/connections/{conn}/test")
    assert t.status_code == 200 and t.json()["ok"] is False and "proxy" in t.json()["message"], t.text

    # With the proxy gone, nothing reaches moto: the scan fails instead of going direct.
    assert owner.patch(f"/connections/{conn}", {"settings": {"regions": ["us-east-1"], "endpoint_url": moto,
                                                             "proxy_id": good["id"]}}).status_code == 200
    tinyproxy.stop()
    t = owner.post(f"/connections/{conn}/test")
    assert t.status_code == 200 and t.json()["ok"] is False, t.text
    scan = wait_scan(owner, trigger(owner, conn, services=["s3"]), timeout=120)
    assert scan["status"] == "failed" or scan["complete"] is False, scan

    # Without the profile, the connection goes direct again; then the profile can be deleted.
    assert owner.patch(f"/connections/{conn}", {"settings": {"regions": ["us-east-1"], "endpoint_url": moto}}).status_code == 200
    assert owner.post(f"/connections/{conn}/test").json()["ok"] is True
    assert owner.delete(f"/proxies/{good['id']}").status_code == 204


def test_environment_proxy_is_honoured_with_no_proxy(stack, signup, moto, tinyproxy):
    """HTTP(S)_PROXY in the scan-orchestrator's environment carries connections without a profile;
    NO_PROXY exempts hosts from it."""
    owner, _, _ = signup("envproxy")
    moto_port = int(moto.rsplit(":", 1)[1])
    conn = owner.post("/connections/", {"name": "env", "provider": "aws", "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
                                        "settings": {"regions": ["us-east-1"], "endpoint_url": moto}}).json()["id"]
    via = f"http://vigil:{PROXY_PASSWORD}@127.0.0.1:{tinyproxy.port}"
    try:
        stack.restart("scan-orchestrator", HTTP_PROXY=via, HTTPS_PROXY=via, NO_PROXY="")
        before = tinyproxy.connects(moto_port)
        assert owner.post(f"/connections/{conn}/test").json()["ok"] is True
        assert tinyproxy.connects(moto_port) > before
        stack.restart("scan-orchestrator", HTTP_PROXY=via, HTTPS_PROXY=via, NO_PROXY="localhost,127.0.0.1")
        before = tinyproxy.connects(moto_port)
        assert owner.post(f"/connections/{conn}/test").json()["ok"] is True
        assert tinyproxy.connects(moto_port) == before
        assert PROXY_PASSWORD not in stack.log("scan-orchestrator")
    finally:
        stack.restart("scan-orchestrator")
