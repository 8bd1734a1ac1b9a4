"""Black-box harness: starts a real nats-server, a real PostgreSQL and every Vigil service binary on
random loopback ports, and talks to the gateway over HTTP and to the bus with nats-py."""
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("VIGIL_BIN_DIR", os.path.join(ROOT, ".build", "debug"))
SERVICES = ["gateway", "identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]


# A test (with its fixtures' setup and teardown) that runs longer than this is hung: every thread's Python stack is
# printed and the run ends with an error, rather than CI waiting out its 90 minutes and printing nothing. The
# longest tests (Schemathesis, chaos, the 100,000-commit repository) take a few minutes.
TEST_LIMIT_SECONDS = int(os.environ.get("VIGIL_E2E_TEST_LIMIT", "1200"))


def _hung(item):
    import faulthandler

    # pytest holds fd 2 in its capture: give it back first (as pytest-timeout does), or the stacks are lost.
    capman = item.config.pluginmanager.getplugin("capturemanager")
    if capman:
        capman.suspend_global_capture(in_=True)
    sys.stderr.write(f"\n{item.nodeid} still running after {TEST_LIMIT_SECONDS} s: the stacks of every thread\n")
    sys.stderr.flush()
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    timer = threading.Timer(TEST_LIMIT_SECONDS, _hung, args=(item,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Bus:
    """A nats-py connection on a background event loop, recording messages of chosen subjects."""

    def __init__(self, url):
        import nats
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.messages = []
        self.lock = threading.Lock()
        self.nc = self.run(nats.connect(servers=url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2))

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def record(self, subject):
        async def handler(msg):
            with self.lock:
                self.messages.append((msg.subject, dict(msg.headers or {}), msg.data))
        self.run(self.nc.subscribe(subject, cb=handler))

    def received(self, subject_prefix):
        with self.lock:
            return [(s, h, json.loads(d)) for s, h, d in self.messages if s.startswith(subject_prefix)]

    def finding_events(self, type_=None):
        """The finding lifecycle events recorded, taken out of their `vigil.events.finding.batch` messages."""
        return [item for _, _, batch in self.received("vigil.events.finding.batch") for item in batch["data"]["findings"]
                if type_ is None or item["type"] == type_]

    def wait_for_finding_event(self, predicate, type_, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for item in self.finding_events(type_):
                if predicate(item):
                    return item
            time.sleep(0.05)
        raise AssertionError(f"no {type_} event matched in a finding batch")

    def wait_for(self, predicate, subject_prefix, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for s, h, body in self.received(subject_prefix):
                if predicate(body):
                    return body
            time.sleep(0.05)
        raise AssertionError(f"no message on {subject_prefix} matched within {timeout}s")

    def publish_event(self, subject, body, msg_id=None):
        """Publishes to JetStream (as a service's outbox relay would), with Nats-Msg-Id."""
        async def go():
            js = self.nc.jetstream()
            await js.publish(subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": msg_id or body["id"]})
        self.run(go())

    def request(self, subject, data=b"", timeout=2):
        return self.run(self.nc.request(subject, data, timeout=timeout))

    def gather(self, subject, wait=1.0):
        """Publishes with a reply inbox and collects every reply that arrives within `wait`."""
        replies = []
        async def go():
            inbox = self.nc.new_inbox()

            async def collect(m):
                replies.append(json.loads(m.data))
            sub = await self.nc.subscribe(inbox, cb=collect)
            await self.nc.publish(subject, b"", reply=inbox)
            await asyncio.sleep(wait)
            await sub.unsubscribe()
        self.run(go())
        return replies

    def close(self):
        try:
            self.run(self.nc.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


class MailSink:
    """A real SMTP server (aiosmtpd) with STARTTLS and AUTH PLAIN, keeping every message."""

    def __init__(self, tmp):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult
        import ssl
        cert, key = os.path.join(tmp, "smtp.crt"), os.path.join(tmp, "smtp.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.messages = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import email
                sink.messages.append({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                                      "message": email.message_from_bytes(envelope.original_content),
                                      "tls": session.ssl is not None, "authenticated": session.authenticated})
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == b"vigil" and auth_data.password == b"mail-secret"
            return AuthResult(success=ok)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx, require_starttls=True,
                                     authenticator=authenticator, auth_required=True, auth_require_tls=True)
        self.controller.start()

    def wait_for(self, predicate, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in list(self.messages):
                if predicate(m):
                    return m
            time.sleep(0.05)
        raise AssertionError("no matching email arrived")

    def stop(self):
        self.controller.stop()


class Stack:
    def __init__(self, bin_dir=BIN, extra_env=None, limited_gateway=True, identity_replicas=2, record_events=True, durable_pg=False,
                 cluster=False, replicas=1):
        """`cluster`: three JetStream-clustered nats-servers (streams and buckets at replicas 3) instead of one;
        `replicas`: replicas of every service (gateways included, each on its own port; identity gets at least
        `identity_replicas`)."""
        self.bin_dir, self.extra_env, self.limited_gateway = bin_dir, extra_env or {}, limited_gateway
        self.cluster, self.replicas = cluster, replicas
        # Crash tests need PostgreSQL's durable settings: without them a crash loses the last commits.
        self.pg_env = dict(os.environ, VIGIL_PG_DURABLE="1" if durable_pg else "0")
        self.record_events = record_events  # benchmarks turn the test recorder (a subscriber to every event) off
        self.identity_replicas = identity_replicas
        self.tmp = tempfile.mkdtemp(prefix="vigil-e2e-")
        os.chmod(self.tmp, 0o755)
        self.procs = {}
        self.logs = os.path.join(self.tmp, "logs")
        os.makedirs(self.logs)

    def nats_command(self, i):
        node = self.nats_nodes[i]
        cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(node["port"]), "-js", "-sd", os.path.join(self.tmp, f"nats-{i + 1}"),
               "-n", node["name"]]
        if self.cluster:
            cmd += ["--cluster_name", "vigil", "--cluster", f"nats://127.0.0.1:{node['cluster_port']}",
                    "--routes", ",".join(f"nats://127.0.0.1:{n['cluster_port']}" for n in self.nats_nodes if n is not node)]
        return cmd

    def start_nats_node(self, i):
        node = self.nats_nodes[i]
        node["proc"] = subprocess.Popen(self.nats_command(i), stdout=open(os.path.join(self.logs, f"{node['name']}.log"), "ab"),
                                        stderr=subprocess.STDOUT)
        wait_port(node["port"])

    def start(self):
        self.nats_nodes = [{"name": f"vigil-nats-{i + 1}", "port": free_port(), "cluster_port": free_port()}
                           for i in range(3 if self.cluster else 1)]
        for i in range(len(self.nats_nodes)):
            self.start_nats_node(i)
        self.nats_port = self.nats_nodes[0]["port"]
        self.nats = self.nats_nodes[0]["proc"]
        if self.cluster:
            self.wait_jetstream_cluster()
        self.pg_port = free_port()
        subprocess.run([os.path.join(ROOT, "scripts", "pg-temp"), "start", os.path.join(self.tmp, "pg"), str(self.pg_port)], check=True,
                       env=self.pg_env)
        seed = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        self.env = dict(os.environ,
                        VIGIL_NATS_URL=",".join(f"nats://127.0.0.1:{n['port']}" for n in self.nats_nodes),
                        VIGIL_JS_REPLICAS="3" if self.cluster else "1",
                        VIGIL_DATABASE_URL=f"postgresql://vigil@127.0.0.1:{self.pg_port}/vigil",
                        VIGIL_JWT_SEED=seed, VIGIL_PASSWORD_HASH="minimum", VIGIL_LOG_LEVEL="info",
                        VIGIL_OPENAPI_PATH=os.path.join(ROOT, "contracts", "openapi.yaml"),
                        VIGIL_LOGIN_MAX_FAILURES="5", VIGIL_RATE_BURST="1000", VIGIL_RATE_STEADY="100000",
                        VIGIL_NOTIFIER_SEED=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
                        VIGIL_WEBHOOK_ALLOW_LOOPBACK="true", VIGIL_WEBHOOK_BACKOFF_MS="200", VIGIL_WEBHOOK_MAX_ATTEMPTS="6",
                        VIGIL_WEBHOOK_DISABLE_AFTER="4", VIGIL_WEBHOOK_TIMEOUT_MS="3000",
                        VIGIL_WEBHOOK_CONCURRENCY="4", VIGIL_CONTACT_TO="sales@vigil.test", VIGIL_CONTACT_MAX_PER_HOUR="3",
                        VIGIL_SCAN_SEED=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
                        VIGIL_AWS_ENDPOINT_ALLOW_LOOPBACK="true", VIGIL_SCAN_ACK_WAIT_SECONDS="6",
                        VIGIL_REMEDIATION_SEED=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
                        VIGIL_REMEDIATION_ACK_WAIT_SECONDS="6", VIGIL_REMEDIATION_SWEEP_SECONDS="1",
                        VIGIL_BILLING_SWEEP_SECONDS="1", VIGIL_PLAN_LIMITS_CACHE_SECONDS="1",
                        VIGIL_SCAN_TENANT_CONCURRENCY="2", VIGIL_FINDINGS_SWEEP_SECONDS="1", VIGIL_SCHEDULER_TICK_SECONDS="1", VIGIL_CONNECTOR_HEARTBEAT_SECONDS="1", VIGIL_CONNECTOR_POLL_SECONDS="2", VIGIL_SSH_ALLOW_LOOPBACK="true", VIGIL_PROXY_ALLOW_LOOPBACK="true", VIGIL_WEB_ALLOW_LOOPBACK="true", VIGIL_REPO_ALLOW_LOCAL="true", VIGIL_REPO_MIRRORS=os.path.join(self.tmp, "repos"), VIGIL_OSV_DIR=os.path.join(ROOT, "Tests", "e2e", "fixtures", "osv"), VIGIL_SEMGREP=os.path.join(ROOT, ".tools", "semgrep", "bin", "semgrep"), VIGIL_SECURE_COOKIES="false", VIGIL_SCAN_WORKER_CONCURRENCY="4", VIGIL_SCAN_MAX_ATTEMPTS="3",
                        VIGIL_AWS_PLATFORM_ACCESS_KEY_ID="AKIAPLATFORM00000001",
                        VIGIL_AWS_PLATFORM_SECRET_ACCESS_KEY="platform/secret/key/00000000000000000000")
        self.mail = MailSink(self.tmp)
        self.env.update(VIGIL_SMTP_HOST="127.0.0.1", VIGIL_SMTP_PORT=str(self.mail.port), VIGIL_SMTP_SECURITY="starttls",
                        VIGIL_SMTP_USERNAME="vigil", VIGIL_SMTP_PASSWORD="mail-secret", VIGIL_SMTP_VERIFY_TLS="false",
                        VIGIL_SMTP_FROM="Vigil <no-reply@vigil.test>")
        self.env.update(self.extra_env)
        self.http_port = free_port()
        self.spawn("gateway", VIGIL_HTTP_PORT=str(self.http_port))
        self.gateway_ports = [self.http_port]
        for i in range(1, self.replicas):
            self.gateway_ports.append(free_port())
            self.spawn("gateway", name=f"gateway-{i + 1}", VIGIL_HTTP_PORT=str(self.gateway_ports[-1]))
        # Identity replicas share the queue group (two in tests, to exercise it).
        self.identity_replicas = max(self.identity_replicas, self.replicas)
        for i in range(self.identity_replicas):
            self.spawn("identity", name=f"identity-{i + 1}")
        for s in SERVICES[2:]:
            self.spawn(s)
            for i in range(1, self.replicas):
                self.spawn(s, name=f"{s}-{i + 1}")
        # A second gateway with tight limits for the rate-limit and body-size tests.
        self.limited_port = free_port() if self.limited_gateway else self.http_port
        if self.limited_gateway:
            self.spawn("gateway", name="gateway-limited", VIGIL_HTTP_PORT=str(self.limited_port), VIGIL_RATE_BURST="5",
                       VIGIL_RATE_BURST_WINDOW="2", VIGIL_RATE_STEADY="8", VIGIL_RATE_STEADY_WINDOW="60",
                       VIGIL_MAX_BODY_BYTES="2048", VIGIL_REQUEST_TIMEOUT_MS="1000")
        wait_port(self.http_port, 60)
        wait_port(self.limited_port, 60)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.limited_url = f"http://127.0.0.1:{self.limited_port}"
        self.bus = Bus(self.env["VIGIL_NATS_URL"])
        deadline = time.time() + 60
        while time.time() < deadline:
            replies = self.bus.gather("$SRV.PING", 0.3)
            names = {r.get("name") for r in replies}
            if set(SERVICES) <= names and len([r for r in replies if r.get("name") == "identity"]) == self.identity_replicas \
                    and all(len([r for r in replies if r.get("name") == s]) >= self.replicas for s in SERVICES):
                break
        else:
            raise RuntimeError("services did not all answer $SRV.PING; logs in " + self.logs)
        if self.record_events:
            self.bus.record("vigil.events.>")
            self.bus.record("vigil.jobs.email.send")
            self.bus.record("vigil.jobs.findings.results")

    def wait_jetstream_cluster(self, timeout=30):
        """Until the three nodes have elected a JetStream meta leader (each node answers with the cluster)."""
        import nats

        async def ask():
            nc = await nats.connect(servers=[f"nats://127.0.0.1:{n['port']}" for n in self.nats_nodes])
            try:
                r = await nc.request("$JS.API.INFO", b"", timeout=1)
                return json.loads(r.data)
            finally:
                await nc.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                info = asyncio.run(ask())
                if "error" not in info:
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise RuntimeError("the JetStream cluster did not elect a leader")

    def spawn(self, service, name=None, **env):
        name = name or service
        log = open(os.path.join(self.logs, f"{name}.log"), "wb")
        self.procs[name] = subprocess.Popen([os.path.join(self.bin_dir, f"vigil-{service}")], env=dict(self.env, **env),
                                            stdout=log, stderr=subprocess.STDOUT)

    def restart(self, service, **env):
        """Stops the service's process (if it still runs), starts it with `env` and waits until it
        answers on the bus."""
        p = self.procs[service]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(15)
        self.spawn(service, **env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if service in {r.get("name") for r in self.bus.gather("$SRV.PING", 0.3)}:
                return
        raise AssertionError(f"{service} did not come up")

    def log(self, name):
        with open(os.path.join(self.logs, f"{name}.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if getattr(self, "bus", None):
            self.bus.close()
        if getattr(self, "mail", None):
            self.mail.stop()
        for p in self.procs.values():
            p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for node in getattr(self, "nats_nodes", []):
            p = node.get("proc")
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)
        subprocess.run([os.path.join(ROOT, "scripts", "pg-temp"), "stop", os.path.join(self.tmp, "pg")])
        if os.environ.get("VIGIL_KEEP_E2E"):
            print("e2e files kept in", self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    s = Stack()
    try:
        s.start()
        yield s
    finally:
        s.stop()


# Every credential, token and secret the suite sends or is given through the API (passwords, AWS secret keys,
# SSH keys, repository tokens, API keys, access and refresh tokens, signing secrets); the last test of the suite
# (test_zz_secret_hygiene) looks for each of them in the logs, the event stream and a dump of the database.
SECRETS = set()
SECRET_KEYS = {"password", "new_password", "current_password", "secret_access_key", "session_token", "private_key", "ssh_key",
               "token", "key", "access_token", "refresh_token", "secret", "client_secret", "signing_secret", "enrollment_token"}


def remember_secrets(value, key=None):
    if isinstance(value, dict):
        for k, v in value.items():
            remember_secrets(v, k)
    elif isinstance(value, list):
        for v in value:
            remember_secrets(v, key)
    elif isinstance(value, str) and key in SECRET_KEYS and len(value) >= 12 and "*" not in value and "…" not in value:
        if value.startswith("vigil-verify-"):
            return  # a domain's verification token is public by design (served in .well-known or DNS) and kept to check it
        SECRETS.add(value)


class Client:
    """HTTP client bound to the gateway, optionally with a credential."""

    def __init__(self, base, token=None, api_key=None, slug=None):
        self.base, self.token, self.api_key, self.slug = base, token, api_key, slug

    def headers(self, extra=None):
        h = {}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.api_key:
            h["x-api-key"] = self.api_key
        if self.slug:
            h["x-tenant-slug"] = self.slug
        h.update(extra or {})
        return h

    def call(self, method, path, body=None, headers=None, raw=None):
        url = self.base + "/api/v1" + path
        kw = {"headers": self.headers(headers), "timeout": 15}
        if raw is not None:
            kw["data"] = raw
        elif body is not None:
            kw["json"] = body
            remember_secrets(body)
        r = requests.request(method, url, **kw)
        if r.headers.get("content-type", "").startswith("application/json"):
            try:
                remember_secrets(r.json())
            except ValueError:
                pass
        return r

    def get(self, path, **kw): return self.call("GET", path, **kw)
    def post(self, path, body=None, **kw): return self.call("POST", path, body, **kw)
    def patch(self, path, body=None, **kw): return self.call("PATCH", path, body, **kw)
    def delete(self, path, **kw): return self.call("DELETE", path, **kw)

    def as_(self, **kw):
        c = Client(self.base, self.token, self.api_key, self.slug)
        for k, v in kw.items():
            setattr(c, k, v)
        return c


def unique_email(tag="user"):
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture(scope="session")
def moto():
    """moto's server (a real AWS-compatible endpoint) on a random loopback port."""
    port = free_port()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def start_moto(indexed=False, **env):
    """moto's server on a free loopback port; `indexed` runs scripts/moto-indexed.py (the same answers,
    GetMetricData from an index) instead of moto_server."""
    port = free_port()
    log = open(os.environ["VIGIL_MOTO_LOG"], "ab") if os.environ.get("VIGIL_MOTO_LOG") else subprocess.DEVNULL
    command = [sys.executable, os.path.join(ROOT, "scripts", "moto-indexed.py")] if indexed else ["moto_server"]
    proc = subprocess.Popen(command + ["-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log,
                            start_new_session=True, env=dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true",
                                                             MOTO_AMIS_PATH=os.path.join(ROOT, "scripts", "moto-amis.json"), **env))
    wait_port(port, 60)
    return proc, f"http://127.0.0.1:{port}"


def stop_moto(proc):
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:  # a moto busy with a long request does not always stop on TERM
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)


def seeded_moto_server():
    """moto with a deliberately misconfigured account (planted issues and correct twins), seeded by
    scripts/aws-seed.py; yields (endpoint, manifest) and stops it afterwards."""
    proc, endpoint = start_moto()
    try:
        out = subprocess.run(["python3", os.path.join(ROOT, "scripts", "aws-seed.py"), endpoint, "--regions", "us-east-1,us-west-2"],
                             capture_output=True, text=True, check=True).stdout
        yield endpoint, json.loads(out)
    finally:
        stop_moto(proc)


@pytest.fixture(scope="session")
def seeded_moto():
    yield from seeded_moto_server()


@pytest.fixture(scope="session")
def strict_moto():
    """moto that authenticates every request (unknown access keys are refused, as AWS does)."""
    proc, endpoint = start_moto(INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        yield endpoint
    finally:
        stop_moto(proc)


@pytest.fixture
def anon(stack):
    return Client(stack.url)


@pytest.fixture
def signup(stack):
    """Signs up a new user with a new workspace; returns (client, reply, password)."""
    def make(tag="owner", workspace=None):
        email = unique_email(tag)
        password = "correct horse " + uuid.uuid4().hex[:8]
        r = Client(stack.url).post("/auth/signup", {"email": email, "password": password, "full_name": tag.title(),
                                                    "workspace_name": workspace or f"{tag} workspace"})
        assert r.status_code == 201, r.text
        body = r.json()
        return Client(stack.url, token=body["access_token"]), body, password
    return make


def psql(stack, sql):
    """One statement as PostgreSQL's superuser (past row-level security), unaligned output."""
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "-d", "vigil", "-tAc", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def make_enterprise(stack, client, tenant):
    """Puts the workspace on the enterprise plan (no plan rate, no quotas) in billing's table. The subscription
    row is made on first use, so the API is asked for it first (and the update repeated until it lands)."""
    client.get("/billing/subscription")
    deadline = time.time() + 20
    while psql(stack, f"UPDATE billing.subscriptions SET plan = 'enterprise', status = 'active', trial_end = NULL "
                      f"WHERE tenant_id = '{tenant}' RETURNING 1").split()[:1] != ["1"]:
        assert time.time() < deadline, "the workspace's subscription row never appeared"
        time.sleep(0.2)


def join_workspace(stack, owner, role):
    """Invites a new user with `role` into the owner's workspace; returns them signed in."""
    email = f"{role}-{os.urandom(4).hex()}@vigil.test"
    r = owner.post("/users/invite", {"email": email, "role": role})
    assert r.status_code == 201, r.text
    token = email_to(stack, email, "invitation")["values"]["token"]
    r = Client(stack.url).post(f"/invitations/accept/{token}", {"full_name": role.title(), "password": "correct-horse-battery"})
    assert r.status_code == 200, r.text
    return Client(stack.url, token=r.json()["access_token"])


def email_to(stack, address, template, timeout=10):
    return stack.bus.wait_for(lambda b: b["data"]["to"] == address and b["data"]["template"] == template,
                              "vigil.jobs.email.send", timeout)["data"]


def assert_envelope(r, status, error=None):
    assert r.status_code == status, f"{r.status_code} {r.text}"
    body = r.json()
    assert set(body) >= {"error", "message", "correlation_id"}, body
    assert r.headers["x-correlation-id"] == body["correlation_id"]
    if error:
        assert body["error"] == error, body
    return body
