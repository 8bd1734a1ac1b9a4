"""The on-prem connector: enrollment, a real `vigil-connector` process auditing prepared trees through
the running stack, signed calls (replayed, tampered, stale and wrong-secret ones refused), revocation,
and the local `audit` command on a planted tree and its hardened twin."""
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import tempfile
import time
import uuid

import requests

from conftest import BIN, ROOT, assert_envelope

AGENT = os.path.join(BIN, "vigil-connector")
TREE = os.path.join(ROOT, "scripts", "host-tree.py")


def tree(profile):
    d = tempfile.mkdtemp(prefix=f"vigil-host-{profile}-")
    subprocess.run(["python3", TREE, d, "--profile", profile], check=True, capture_output=True)
    return d


def audit(root):
    out = subprocess.run([AGENT, "audit", "--root", root, "--format", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def signed(stack, state, path, body, *, ts=None, nonce=None, secret=None, tamper=False):
    raw = json.dumps(body).encode()
    full = "/api/v1/connector-api" + path
    ts = str(ts if ts is not None else int(time.time()))
    nonce = nonce or secrets.token_urlsafe(18)
    text = "\n".join(["POST", full, ts, nonce, hashlib.sha256(raw).hexdigest()])
    sig = hmac.new((secret or state["secret"]).encode(), text.encode(), hashlib.sha256).hexdigest()
    if tamper:
        raw = raw.replace(b"1.0", b"6.6") if b"1.0" in raw else raw + b" "
    return requests.post(stack.url + full, data=raw, timeout=20, headers={
        "content-type": "application/json", "x-vigil-connector": state["connector_id"], "x-vigil-timestamp": ts,
        "x-vigil-nonce": nonce, "x-vigil-signature": "v1=" + sig})


def enroll(owner, **kw):
    r = owner.post("/connectors/enrollments", {"name": "lab", **kw})
    assert r.status_code == 201, r.text
    return r.json()


def start_agent(stack, token, root, state_dir, **env):
    log = open(os.path.join(state_dir, "agent.log"), "wb")
    return subprocess.Popen([AGENT, "run", "--url", stack.url, "--token", token, "--name", os.path.basename(root), "--state-dir", state_dir,
                             "--root", root], stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **env))


def scan_connection(owner, cid, timeout=60):
    r = owner.post("/scans/trigger", {"connection_id": cid})
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    return wait(lambda: (lambda s: s if s["status"] in ("completed", "failed") else None)(owner.get(f"/scans/{sid}").json()), timeout, "scan")


def test_local_audit_finds_the_planted_issues_and_spares_the_hardened_twin():
    weak, hard = audit(tree("weak")), audit(tree("hardened"))
    assert hard["findings"] == [] and hard["checks_evaluated"] >= 100, hard["findings"]
    ids = {f["rule_id"] for f in weak["findings"]}
    assert len(ids) >= 50, sorted(ids)
    for expected in ("host.ssh.root_login_permitted", "host.ssh.weak_ciphers", "host.accounts.uid0_not_root", "host.accounts.empty_password",
                     "host.files.shadow_permissions", "host.kernel.ip_forward", "host.services.insecure_servers",
                     "host.services.pending_security_updates", "host.files.unexpected_setuid", "host.accounts.sudo_nopasswd_all",
                     "host.accounts.private_key_readable", "host.files.world_writable_dirs_without_sticky", "host.files.tmp_separate"):
        assert expected in ids, expected
    root = next(f for f in weak["findings"] if f["rule_id"] == "host.ssh.root_login_permitted")
    # The finding names the file and line that proves it.
    assert root["evidence"]["permit_root_login"] == "yes" and root["evidence"]["permit_root_login_source"].endswith("/etc/ssh/sshd_config:3")
    upd = next(f for f in weak["findings"] if f["rule_id"] == "host.services.pending_security_updates")
    assert any(u.startswith("openssl 3.0.11-1~deb12u2 → 3.0.15-1~deb12u1") for u in upd["evidence"]["pending_security_updates"])
    bad = subprocess.run([AGENT, "audit", "--root", "/nonexistent-dir"], capture_output=True, text=True)
    assert bad.returncode != 0 and "not a directory" in bad.stderr


def test_enrollment_api_validates_and_isolates(stack, signup):
    owner, _, _ = signup("enroll")
    other, _, _ = signup("enroll-other")
    e = enroll(owner, max_uses=2, expires_in_hours=1)
    assert e["token"].startswith("vce_") and e["status"] == "active" and e["max_uses"] == 2 and e["uses"] == 0
    listed = owner.get("/connectors/enrollments").json()["items"]
    assert [x["id"] for x in listed] == [e["id"]] and "token" not in listed[0] and listed[0]["token_prefix"] == e["token"][:12]
    for body, path in (({"name": ""}, "body.name"), ({"name": "x", "max_uses": 0}, "body.max_uses"),
                       ({"name": "x", "expires_in_hours": 0}, "body.expires_in_hours"), ({"name": "x", "expires_in_hours": 721}, "body.expires_in_hours")):
        r = owner.post("/connectors/enrollments", body)
        assert_envelope(r, 422)
        assert path in [i["path"] for i in r.json()["issues"]]
    assert_envelope(owner.get("/connectors/enrollments?status=bogus"), 422)
    assert other.get("/connectors/enrollments").json()["items"] == []
    assert_envelope(other.delete(f"/connectors/enrollments/{e['id']}"), 404)
    assert_envelope(other.get(f"/connectors/{uuid.uuid4()}"), 404)
    # Registration: the token is the credential, and every refusal is the same 401.
    bodies = []
    for token in ("vce_" + "A" * 43, "not-a-token", e["token"] + "x"):
        r = requests.post(stack.url + "/api/v1/connector-api/register", json={"enrollment_token": token, "name": "n", "hostname": "h", "version": "1"})
        assert r.status_code == 401
        bodies.append({k: v for k, v in r.json().items() if k != "correlation_id"})
    assert bodies[0] == bodies[1] == bodies[2]
    assert owner.delete(f"/connectors/enrollments/{e['id']}").status_code == 204
    r = requests.post(stack.url + "/api/v1/connector-api/register", json={"enrollment_token": e["token"], "name": "n", "hostname": "h", "version": "1"})
    assert r.status_code == 401 and {k: v for k, v in r.json().items() if k != "correlation_id"} == bodies[0]
    assert owner.get("/connectors/enrollments?status=revoked").json()["items"][0]["status"] == "revoked"
    assert_envelope(owner.post("/connections/", {"name": "x", "provider": "linux", "settings": {"mode": "agent", "connector_id": str(uuid.uuid4())}}), 404)
    assert_envelope(owner.post("/connections/", {"name": "x", "provider": "linux", "settings": {"mode": "telepathy"}}), 422)


def test_a_real_connector_enrolls_audits_and_is_revoked(stack, signup):
    owner, _, _ = signup("connector")
    other, _, _ = signup("connector-other")
    weak, hard = tree("weak"), tree("hardened")
    agents = []
    try:
        connectors = {}
        for name, root in (("weak", weak), ("hard", hard)):
            e = enroll(owner)
            state_dir = tempfile.mkdtemp(prefix="vigil-agent-")
            agents.append(start_agent(stack, e["token"], root, state_dir, VIGIL_CONNECTOR_CHUNK_BYTES="4096"))
            state_file = os.path.join(state_dir, "connector.json")
            wait(lambda: os.path.exists(state_file), 30, "registration")
            # The secret is kept in a file only its owner can read.
            assert os.stat(state_file).st_mode & 0o777 == 0o600 and os.stat(state_dir).st_mode & 0o777 == 0o700
            state = json.load(open(state_file))
            connectors[name] = state
            c = wait(lambda: (lambda c: c if c["status"] == "online" else None)(owner.get(f"/connectors/{state['connector_id']}").json()),
                     30, "an online connector")
            assert c["version"] == "1.0.0" and c["facts"].get("hostname") and c["last_seen_at"]
            # A single-use token cannot register a second connector.
            r = requests.post(stack.url + "/api/v1/connector-api/register",
                              json={"enrollment_token": e["token"], "name": "again", "hostname": "h", "version": "1"})
            assert r.status_code == 401
        assert {c["id"] for c in owner.get("/connectors?status=online").json()["items"]} == {s["connector_id"] for s in connectors.values()}
        assert_envelope(other.get(f"/connectors/{connectors['weak']['connector_id']}"), 404)
        assert_envelope(other.post(f"/connectors/{connectors['weak']['connector_id']}/revoke"), 404)
        assert_envelope(other.post("/connections/", {"name": "x", "provider": "linux",
                                                     "settings": {"mode": "agent", "connector_id": connectors["weak"]["connector_id"]}}), 404)

        # Each connector audits its tree for a linux connection's scan; results arrive in chunks.
        found = {}
        for name, state in connectors.items():
            r = owner.post("/connections/", {"name": f"host-{name}", "provider": "linux",
                                             "settings": {"mode": "agent", "connector_id": state["connector_id"]}})
            assert r.status_code == 201, r.text
            cid = r.json()["id"]
            scan = scan_connection(owner, cid)
            assert scan["status"] == "completed" and scan["resources_scanned"] > 20, scan
            found[name] = wait(lambda: owner.get(f"/findings/?connection_id={cid}&limit=500&status=open").json()["items"] or name == "hard",
                               30, "findings")
            if name == "hard":
                time.sleep(1.5)
                found[name] = owner.get(f"/findings/?connection_id={cid}&limit=500").json()["items"]
        assert found["hard"] == [], [f["rule_code"] for f in found["hard"]]
        weak_rules = {f["rule_code"] for f in found["weak"]}
        assert {"host.ssh.root_login_permitted", "host.accounts.uid0_not_root", "host.services.pending_security_updates"} <= weak_rules
        assert len(weak_rules) >= 50
        f = next(f for f in found["weak"] if f["rule_code"] == "host.ssh.root_login_permitted")
        assert f["provider"] == "linux" and f["evidence"]["permit_root_login_source"].endswith("/etc/ssh/sshd_config:3")
        assert "5.1.20" in f["compliance"]["cis_debian_12"]
        c = owner.get(f"/connectors/{connectors['weak']['connector_id']}").json()
        assert c["jobs"]["completed"] == 1 and c["jobs"]["queued"] == 0

        # The gateway restarts: the agents retry and keep heartbeating.
        seen = owner.get(f"/connectors/{connectors['hard']['connector_id']}").json()["last_seen_at"]
        stack.restart("gateway", VIGIL_HTTP_PORT=str(stack.http_port))
        from conftest import wait_port
        wait_port(stack.http_port, 30)
        wait(lambda: owner.get(f"/connectors/{connectors['hard']['connector_id']}").json()["last_seen_at"] > seen, 30, "a heartbeat after the restart")

        # Signed calls: a good one passes; replayed, tampered, stale and wrong-secret ones get the same 401.
        st = connectors["weak"]
        good = signed(stack, st, "/heartbeat", {"version": "1.0.0"})
        assert good.status_code == 200, good.text
        nonce = secrets.token_urlsafe(18)
        assert signed(stack, st, "/heartbeat", {"version": "1.0.0"}, nonce=nonce).status_code == 200
        refusals = [signed(stack, st, "/heartbeat", {"version": "1.0.0"}, nonce=nonce),
                    signed(stack, st, "/heartbeat", {"version": "1.0.0"}, tamper=True),
                    signed(stack, st, "/heartbeat", {"version": "1.0.0"}, ts=int(time.time()) - 301),
                    signed(stack, st, "/heartbeat", {"version": "1.0.0"}, secret="vcs_" + "B" * 43),
                    requests.post(stack.url + "/api/v1/connector-api/heartbeat", json={"version": "1"}, timeout=10)]
        assert [r.status_code for r in refusals] == [401] * 5
        assert len({json.dumps({k: v for k, v in r.json().items() if k != "correlation_id"}) for r in refusals}) == 1
        # A result posted again for a finished job is acknowledged with the job's state.
        jobs_done = stack_job(stack, st["connector_id"])
        r = signed(stack, st, f"/jobs/{jobs_done}/result", {"status": "completed", "data": "{}"})
        assert r.status_code == 200 and r.json()["status"] == "completed", r.text
        assert signed(stack, st, f"/jobs/{uuid.uuid4()}/result", {"status": "completed", "data": "{}"}).status_code == 404
        # Bad input from an authenticated connector is a 4xx envelope, never a 500.
        bad = signed(stack, st, f"/jobs/{jobs_done}/result", {"status": "done"})
        assert bad.status_code == 422 and bad.json()["error"] == "validation_error", bad.text
        assert signed(stack, st, "/jobs/poll", {"wait_seconds": "soon"}).status_code == 422
        assert signed(stack, st, "/heartbeat", {"version": 7}).status_code == 422

        # Revoke: the secret stops working at once and the agent stops.
        r = owner.post(f"/connectors/{st['connector_id']}/revoke")
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        assert signed(stack, st, "/heartbeat", {"version": "1.0.0"}).status_code == 401
        assert agents[0].wait(30) == 3
        assert owner.post(f"/connectors/{st['connector_id']}/revoke").json()["status"] == "revoked"
    finally:
        for a in agents:
            if a.poll() is None:
                a.terminate()
                a.wait(10)


def stack_job(stack, connector_id):
    from conftest import psql
    out = psql(stack, f"SELECT id FROM scans.connector_jobs WHERE connector_id = '{connector_id}' AND status = 'completed' LIMIT 1")
    return out.strip()


class SSHD:
    """A real OpenSSH server on a random loopback port, with its own host key and authorized_keys."""

    def __init__(self, port=None):
        from conftest import free_port
        self.dir = tempfile.mkdtemp(prefix="vigil-sshd-")
        os.chmod(self.dir, 0o700)
        self.port = port or free_port()
        self.proc = None
        self.new_host_key()

    def new_host_key(self):
        key = os.path.join(self.dir, "host_ed25519")
        for p in (key, key + ".pub"):
            if os.path.exists(p):
                os.remove(p)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(key + ".pub") as f:
            self.host_key = " ".join(f.read().split()[:2])

    def start(self, authorized_key):
        os.makedirs("/run/sshd", exist_ok=True)
        with open(os.path.join(self.dir, "authorized_keys"), "w") as f:
            f.write(authorized_key + "\n")
        cfg = os.path.join(self.dir, "sshd_config")
        with open(cfg, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.dir}/host_ed25519\nPidFile {self.dir}/sshd.pid\n"
                    f"AuthorizedKeysFile {self.dir}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from conftest import wait_port
        wait_port(self.port, 15)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def test_agentless_ssh_audit_pins_the_host_key_and_matches_the_local_agent(stack, signup):
    owner, _, _ = signup("agentless")
    key = owner.post("/connections/linux/generate-key")
    assert key.status_code == 200, key.text
    sshd = SSHD()
    try:
        sshd.start(key.json()["public_key"])
        body = {"name": "lab-ssh", "provider": "linux", "settings": {"mode": "ssh", "host": "127.0.0.1", "port": sshd.port, "username": "root"},
                "credentials": {"private_key": key.json()["private_key"]}}
        for bad, path in (({**body["settings"], "port": 70000}, "body.settings.port"), ({**body["settings"], "username": "Root User"}, "body.settings.username"),
                          ({**body["settings"], "host": "bad host!"}, "body.settings.host")):
            r = owner.post("/connections/", {**body, "settings": bad})
            assert_envelope(r, 422)
            assert path in [i["path"] for i in r.json()["issues"]]
        assert_envelope(owner.post("/connections/", {**body, "credentials": {"private_key": "not a key"}}), 422)
        r = owner.post("/connections/", body)
        assert r.status_code == 201, r.text
        conn = r.json()
        assert "BEGIN" not in json.dumps(conn) and conn["credentials"]["private_key"].startswith("****")
        t = owner.post(f"/connections/{conn['id']}/test").json()
        assert t["ok"] is True, t

        scan = scan_connection(owner, conn["id"], timeout=120)
        assert scan["status"] == "completed" and scan["resources_scanned"] > 20, scan
        # Trust on first use: the key the server showed is pinned on the connection.
        assert owner.get(f"/connections/{conn['id']}").json()["settings"]["host_key"] == sshd.host_key
        time.sleep(1.5)
        remote = {f["rule_code"] for f in owner.get(f"/findings/?connection_id={conn['id']}&limit=500").json()["items"]}
        # The agent auditing the same machine locally reaches the same verdicts (sockets aside: the test opens ports).
        local = {f["rule_id"] for f in audit("/")["findings"]}
        strip = lambda s: {x for x in s if not x.startswith("host.network.")}
        assert strip(remote) == strip(local), (sorted(strip(remote) - strip(local)), sorted(strip(local) - strip(remote)))

        # The server's host key changes: the next scan fails and says why; nothing is trusted silently.
        sshd.stop()
        sshd.new_host_key()
        sshd.start(key.json()["public_key"])
        failed = scan_connection(owner, conn["id"], timeout=120)
        assert failed["status"] == "failed" and "host key" in failed["error"], failed
        assert owner.get(f"/connections/{conn['id']}").json()["settings"]["host_key"] != sshd.host_key
    finally:
        sshd.stop()


def test_install_instructions_run_the_real_agent(stack, signup):
    owner, _, _ = signup("installer")
    steps = owner.get("/connections/linux/install-instructions").json()
    assert "/connector/install.sh" in steps["commands"][0] and "{ENROLLMENT_TOKEN}" in steps["commands"][0]
    script = requests.get(stack.url + "/connector/install.sh", timeout=10)
    assert script.status_code == 200 and script.text.startswith("#!/bin/sh")
    binary = requests.get(stack.url + "/connector/vigil-connector", timeout=60)
    assert binary.status_code == 200 and binary.content == open(AGENT, "rb").read()
    # The documented one-liner, with the token filled in, into a scratch prefix and without systemd.
    token = enroll(owner)["token"]
    prefix, state = tempfile.mkdtemp(prefix="vigil-prefix-"), tempfile.mkdtemp(prefix="vigil-state-") + "/s"
    run = subprocess.run(["sh", "-c", f"curl -fsSL {stack.url}/connector/install.sh | sh -s -- --token '{token}' --name installed "
                          f"--url '{stack.url}' --prefix {prefix} --state-dir {state} --no-service"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert os.access(os.path.join(prefix, "vigil-connector"), os.X_OK) and "vigil-connector run --state-dir" in run.stdout
    cid = json.load(open(os.path.join(state, "connector.json")))["connector_id"]
    assert owner.get(f"/connectors/{cid}").json()["name"] == "installed"
