"""Outages of the two dependencies, on a stack of its own (PostgreSQL durable, as `make run` keeps it: with the
test clusters' fsync/synchronous_commit off a crash loses the last commits): PostgreSQL stopped the way a crash
stops it (immediate shutdown, no checkpoint) and restarted after five seconds; nats-server killed with SIGKILL and restarted on its
store. During each outage a request answers a fast 503 `unavailable` with Retry-After (never a 500, never a hang)
and /health names the dependency that is down; afterwards every request succeeds — including the ones that draw
the pooled connections opened before the restart."""
import os
import signal
import subprocess
import time
import uuid

import requests

from conftest import ROOT, Client, Stack, wait_port


def pg_ctl(stack, *args):
    pgbin = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
    subprocess.run(["runuser", "-u", "postgres", "--", f"/usr/lib/postgresql/{pgbin}/bin/pg_ctl", "-D",
                    os.path.join(stack.tmp, "pg", "data"), *args], check=True, capture_output=True)


def test_database_and_bus_outages_answer_503_and_recover():
    s = Stack(limited_gateway=False, record_events=False, durable_pg=True)
    s.start()
    try:
        r = Client(s.url).post("/auth/signup", {"email": f"outage-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse 12",
                                                "full_name": "Out Age", "workspace_name": "outage"})
        assert r.status_code == 201, r.text
        owner = Client(s.url, token=r.json()["access_token"])
        keys = [owner.post("/api-keys/", {"name": f"k{i}"}).json()["key"] for i in range(4)]
        health = requests.get(s.url + "/health").json()
        assert health["status"] == "ok" and health["dependencies"] == {"nats": "up", "postgres": "up"}, health
        assert set(health["services"]) >= {"identity", "findings", "scan-orchestrator"} and set(health["services"].values()) == {"up"}
        # Warm every pool: each service has opened its connections before the restart.
        for _ in range(3):
            for k in keys:
                c = Client(s.url, api_key=k)
                assert c.get("/connections").status_code == 200 and c.get("/findings/?limit=5").status_code == 200

        # PostgreSQL crashes (immediate shutdown): requests that need it answer 503 fast, with Retry-After.
        pg_ctl(s, "stop", "-m", "immediate")
        outage = []
        for path in ("/connections", "/findings/?limit=5", "/webhooks/endpoints", "/scans/", "/remediations/"):
            started = time.time()
            r = owner.get(path)
            outage.append((path, r.status_code, round(time.time() - started, 2)))
            assert r.status_code == 503 and r.json()["error"] == "unavailable" and r.headers.get("Retry-After"), (path, r.text)
            assert time.time() - started < 3, outage
        health = requests.get(s.url + "/health")
        assert health.status_code == 503 and health.json()["dependencies"]["postgres"] == "down", health.text
        time.sleep(5)
        subprocess.run([os.path.join(ROOT, "scripts", "pg-temp"), "start", os.path.join(s.tmp, "pg"), str(s.pg_port)], check=True,
                       env=s.pg_env)
        started, recovered = time.time(), None
        while time.time() - started < 20:
            if owner.get("/connections").status_code == 200:
                recovered = time.time() - started
                break
            time.sleep(0.1)
        assert recovered is not None, "the API did not recover after PostgreSQL came back"
        # Every pooled connection from before the restart is replaced, not handed out broken.
        statuses = []
        for _ in range(4):
            for k in keys:
                c = Client(s.url, api_key=k)
                statuses += [c.get("/connections").status_code, c.get("/findings/?limit=5").status_code, c.get("/auth/me").status_code,
                             c.get("/webhooks/endpoints").status_code]
        assert set(statuses) <= {200, 201}, statuses
        assert requests.get(s.url + "/health").json()["status"] == "ok"

        # nats-server is killed: the gateway answers 503 at once (no request waits out its timeout).
        s.nats.send_signal(signal.SIGKILL)
        s.nats.wait(10)
        time.sleep(0.5)
        started = time.time()
        r = owner.get("/connections")
        took = time.time() - started
        assert r.status_code == 503 and r.json()["error"] == "unavailable" and r.headers.get("Retry-After") and took < 1, (r.text, took)
        health = requests.get(s.url + "/health")
        assert health.status_code == 503 and health.json()["dependencies"]["nats"] == "down"
        s.start_nats_node(0)  # same port, same store
        started, back = time.time(), None
        while time.time() - started < 30:
            # Each service reconnects on its own (jittered reconnect waits): back when those behind both routes answer.
            if owner.get("/connections").status_code == 200 and owner.get("/findings/?limit=5").status_code == 200:
                back = time.time() - started
                break
            time.sleep(0.1)
        assert back is not None, "the API did not recover after NATS came back"
        assert all(Client(s.url, api_key=k).get("/findings/?limit=5").status_code == 200 for k in keys)
        print(f"postgres outage: 503 in {max(t for _, _, t in outage)} s at most; recovered {recovered:.2f} s after restart; "
              f"nats outage: 503 in {took:.3f} s; recovered {back:.2f} s after restart")
    finally:
        s.stop()
