"""Chaos on the cluster profile, on a stack of its own: three JetStream-clustered nats-servers (streams and
buckets at replicas 3), two replicas of every service, PostgreSQL durable. A reference scan runs undisturbed;
then, each during a running scan of its own connection with webhook deliveries in flight, `kill -9` in turn of
one NATS node, of the node leading the jobs stream, of PostgreSQL (restarted after 5 s), and of one replica of
every service. Afterwards: every scan completed with the reference's counts, every finding event and scan
completion delivered to the webhook endpoint exactly once (the receiver dedups on webhook-id and counts), no
outbox row left unpublished, and the API answered nothing but 2xx and, during an outage, 503."""
import json
import os
import signal
import subprocess
import threading
import time
import uuid

from conftest import ROOT, Client, Stack, make_enterprise
from test_notifier import Receiver
from test_outages import pg_ctl
from test_scans import connect, wait_scan

SCHEMAS = ["identity", "scans", "findings", "remediation", "billing", "notifier"]


class Poller:
    """Reads through both gateways every 50 ms and keeps every status (a refused TCP connection to a gateway
    replica that was killed is not an API answer and is counted apart)."""

    def __init__(self, clients):
        self.clients, self.statuses, self.refused, self.stop = clients, [], 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        import requests
        while not self.stop.is_set():
            for i, c in enumerate(self.clients):
                for path in ("/connections", "/findings/?limit=5", "/scans/?limit=5"):
                    try:
                        began = time.time()
                        r = c.get(path)
                        self.statuses.append((time.time(), i, path, r.status_code, r.text[:120] if r.status_code != 200 else "", time.time() - began))
                    except requests.ConnectionError:
                        self.refused += 1
            time.sleep(0.05)


def sql(stack, statement):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "-d", "vigil", "-tAc", statement],
                          capture_output=True, text=True, check=True).stdout.strip().split("\n")[0]


def js_info(stack, stream):
    return json.loads(stack.bus.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5).data)


def test_cluster_survives_node_leader_database_and_replica_kills(seeded_moto):
    endpoint, manifest = seeded_moto
    receiver = Receiver()
    s = Stack(cluster=True, replicas=2, durable_pg=True, limited_gateway=False, record_events=False)
    poller = None
    try:
        s.start()
        r = Client(s.url).post("/auth/signup", {"email": f"chaos-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse 12",
                                                "full_name": "Chaos", "workspace_name": "chaos"})
        assert r.status_code == 201, r.text
        tenant = r.json()["workspace"]["id"]
        owner = Client(s.url, token=r.json()["access_token"])
        key = owner.post("/api-keys/", {"name": "chaos"}).json()["key"]
        owner = Client(s.url, api_key=key)  # access tokens would expire across the run
        make_enterprise(s, owner, tenant)
        # Streams and the idempotency bucket are replicated on all three nodes.
        for stream in ("VIGIL_EVENTS", "VIGIL_JOBS", "VIGIL_DEAD", "KV_vigil_idempotency"):
            info = js_info(s, stream)
            assert info["config"]["num_replicas"] == 3 and len(info["cluster"]["replicas"]) == 2, (stream, info.get("cluster"))
        ep = owner.post("/webhooks/endpoints", {"url": receiver.url("/chaos"), "events": ["finding.*", "scan.completed"]}).json()

        reference = wait_scan(owner, trigger(owner, connect(owner, endpoint, manifest)), timeout=120)
        assert reference["status"] == "completed" and reference["complete"], reference
        poller = Poller([Client(f"http://127.0.0.1:{p}", api_key=key) for p in s.gateway_ports])
        poller.thread.start()

        def kill_node(i):
            node = s.nats_nodes[i]
            node["proc"].send_signal(signal.SIGKILL)
            node["proc"].wait(10)
            return lambda: s.start_nats_node(i)

        def kill_jobs_leader():
            leader = js_info(s, "VIGIL_JOBS")["cluster"]["leader"]
            return kill_node(next(i for i, n in enumerate(s.nats_nodes) if n["name"] == leader))

        def kill_postgres():
            pg_ctl(s, "stop", "-m", "immediate")

            def restart():
                time.sleep(5)
                subprocess.run([os.path.join(ROOT, "scripts", "pg-temp"), "start", os.path.join(s.tmp, "pg"), str(s.pg_port)], check=True,
                               env=s.pg_env)
            return restart

        def kill_replicas():
            names = ["gateway-2", "identity-1", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]
            for n in names:
                s.procs[n].send_signal(signal.SIGKILL)
                s.procs[n].wait(10)

            def respawn():
                s.spawn("gateway", name="gateway-2", VIGIL_HTTP_PORT=str(s.gateway_ports[1]))
                s.spawn("identity", name="identity-1")
                for n in names[2:]:
                    s.spawn(n)
            return respawn

        scans, timeline = {}, []
        for fault, inject in (("nats node", lambda: kill_node(2)), ("jobs stream leader", kill_jobs_leader),
                              ("postgresql", kill_postgres), ("one replica of every service", kill_replicas)):
            conn = connect(owner, endpoint, manifest)
            scan_id = trigger(owner, conn)
            deadline = time.time() + 30
            while time.time() < deadline and owner.get(f"/scans/{scan_id}").json().get("status") != "running":
                time.sleep(0.05)
            injected_at = time.time()
            recover = inject()
            time.sleep(1)
            recover()
            recovered_at = time.time()
            timeline.append((fault, injected_at, recovered_at))
            scans[fault] = (conn, scan_id)
        for fault, (conn, scan_id) in scans.items():
            scan = wait_scan(owner, scan_id, timeout=180)
            assert scan["status"] == "completed" and scan["complete"], (fault, scan)
            for k in ("resources_scanned", "checks_evaluated", "findings_count"):
                assert scan[k] == reference[k], (fault, k, scan[k], reference[k])
            deadline = time.time() + 60
            while time.time() < deadline and not owner.get(f"/scans/{scan_id}").json().get("findings_ingested"):
                time.sleep(0.2)
            open_ = owner.get(f"/findings/?connection_id={conn}&limit=1").json()
            assert open_["total"] == sum(reference["findings_count"].values()), (fault, open_["total"])

        # Every finding event and scan completion of the disturbed scans reaches the endpoint, each once.
        expected = set()
        for conn, scan_id in scans.values():
            events, cursor = [], None
            for _ in range(50):
                page = owner.get(f"/finding-events?connection_id={conn}&limit=200" + (f"&cursor={cursor}" if cursor else "")).json()
                events += page["items"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            expected |= {e["id"] for e in events}
        assert len(expected) == len(scans) * sum(reference["findings_count"].values())
        deadline = time.time() + 120
        got = {}
        while time.time() < deadline:
            got = {}
            for q in list(receiver.requests):
                if q["path"] != "/chaos":
                    continue
                body = json.loads(q["body"])
                got.setdefault(body["data"].get("event_id") or body["data"]["scan_id"], set()).add(q["headers"]["webhook-id"])
            if expected <= set(got):
                break
            time.sleep(0.5)
        missing = expected - set(got)
        assert not missing, f"{len(missing)} finding events never delivered"
        assert all(len(ids) == 1 for ids in got.values()), "an event was delivered under two webhook ids"
        completions = {scan_id for _, scan_id in scans.values()}
        assert completions <= set(got), "a scan completion was not delivered"
        deliveries = owner.get(f"/webhooks/endpoints/{ep['id']}/deliveries?limit=1").json()
        assert deliveries["items"] and deliveries["items"][0]["status"] in ("delivered", "pending")

        # No outbox row left behind in any service.
        deadline = time.time() + 30
        stuck = None
        while time.time() < deadline:
            stuck = {sc: sql(s, f"SELECT count(*) FROM {sc}.outbox WHERE published_at IS NULL") for sc in SCHEMAS}
            if set(stuck.values()) == {"0"}:
                break
            time.sleep(0.5)
        assert set(stuck.values()) == {"0"}, stuck

        # Reads go on until the last fault is 40 s behind (respawned replicas start, caches refill).
        time.sleep(max(0.0, recovered_at + 40 - time.time()))
        poller.stop.set()
        poller.thread.join(15)
        statuses = [x[3] for x in poller.statuses]
        start = timeline[0][1]
        # An unexpected answer is shown with when it came (seconds after the first fault), the gateway replica it came
        # from, and the faults' times, so the service logs (VIGIL_KEEP_E2E=1 keeps them) can be read at that moment.
        assert statuses and set(statuses) <= {200, 503}, (
            [(round(x[0] - start, 1), f"gateway {x[1]}", x[2], x[3], x[4]) for x in poller.statuses if x[3] not in (200, 503)][:10],
            [(f, round(a - start, 1), round(b - start, 1)) for f, a, b in timeline])
        # Once the last fault is 30 s behind, every read answers 200.
        settled = [x for x in poller.statuses if x[0] > recovered_at + 30]
        assert settled and all(x[3] == 200 for x in settled), ("the API did not settle back to 200",
                                                               [x for x in settled if x[3] != 200][:10], len(settled))
        slowest = sorted(x[5] for x in poller.statuses)[-3:]
        print(f"chaos: {len(statuses)} reads (slowest {', '.join(f'{d:.2f}' for d in slowest)} s; {statuses.count(503)} answered 503 during "
              f"outages, {poller.refused} refused by a killed gateway replica); {len(scans)} disturbed scans completed with the reference's counts; {len(got)} events delivered once")
    finally:
        if poller:
            poller.stop.set()
        receiver.server.shutdown()
        s.stop()


def trigger(client, conn_id):
    """Triggers a scan, retrying while a 503 says the platform is recovering."""
    for _ in range(100):
        r = client.post("/scans/trigger", {"connection_id": conn_id})
        if r.status_code == 202:
            return r.json()["id"]
        assert r.status_code == 503, r.text
        time.sleep(0.2)
    raise AssertionError("scan could not be triggered")
