#!/usr/bin/env python3
"""Gateway benchmark: wrk -t2 -c32 against (a) a route with no bus call, (b) a route with one bus
request to a trivial responder, (c) GET /api/v1/auth/me with an API key. Prints req/s, p50, p99."""
import os
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "e2e"))
from conftest import Client, Stack, unique_email  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "5s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def to_ms(v):
    n, unit = float(re.match(r"([\d.]+)", v).group(1)), re.sub(r"[\d.]", "", v)
    return n * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def wrk(url, headers=()):
    cmd = ["wrk", "-t2", "-c32", "-d", DURATION, "--latency"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, p99, int(non2xx.group(1)) if non2xx else 0


class FastReceiver:
    """A minimal asyncio HTTP receiver (200 to every POST) recording arrival time and body."""

    def __init__(self):
        import asyncio
        import threading
        from conftest import free_port
        self.port = free_port()
        self.hits = []
        self.loop = asyncio.new_event_loop()
        hits = self.hits

        class Proto(asyncio.Protocol):
            def connection_made(self, transport):
                self.t, self.buf = transport, b""

            def data_received(self, data):
                self.buf += data
                head, sep, rest = self.buf.partition(b"\r\n\r\n")
                if not sep:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(rest) < length:
                    return
                hits.append((time.time(), rest[:length]))
                self.t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                self.t.close()

        async def serve():
            await self.loop.create_server(Proto, "127.0.0.1", self.port, backlog=1024)
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop).result(5)


def bench_notify(bin_dir):
    """10,000 events fanned out to 10 endpoints: deliveries/s and p99 event-to-delivery latency."""
    import asyncio
    import json as _json
    from datetime import datetime
    events = int(os.environ.get("BENCH_EVENTS", "10000"))
    # Events are offered at a steady rate (default: 220 events/s = 2,200 deliveries/s offered), so the
    # latency measures the pipeline rather than a self-made backlog; BENCH_RATE=0 publishes in one burst.
    rate = float(os.environ.get("BENCH_RATE", "220"))
    endpoints = int(os.environ.get("BENCH_ENDPOINTS", "10"))
    stack = Stack(bin_dir=bin_dir, limited_gateway=False, identity_replicas=1,
                  extra_env={"VIGIL_RATE_BURST": "100000000", "VIGIL_RATE_STEADY": "1000000000", "VIGIL_LOG_LEVEL": "warning",
                             "VIGIL_WEBHOOK_CONCURRENCY": "128"})
    rx = FastReceiver()
    try:
        stack.start()
        r = Client(stack.url).post("/auth/signup", {"email": unique_email("nb"), "password": "bench password 1",
                                                    "full_name": "Bench", "workspace_name": "Bench"}).json()
        owner = Client(stack.url, token=r["access_token"])
        tenant = r["workspace"]["id"]
        for i in range(endpoints):
            assert owner.post("/webhooks/endpoints", {"url": f"http://127.0.0.1:{rx.port}/e{i}", "events": ["bench.*"]}).status_code == 201

        async def publish():
            js = stack.bus.nc.jetstream()
            t0 = time.time()
            for i in range(events):
                if rate > 0:
                    delay = t0 + i / rate - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                now = datetime.utcnow().isoformat(timespec="milliseconds") + "Z"
                body = _json.dumps({"id": str(uuid.uuid4()), "type": "bench.ping", "occurred_at": now, "tenant_id": tenant,
                                    "data": {"n": i}}).encode()
                await js.publish("vigil.events.bench.ping", body)
        start = time.time()
        stack.bus.run(publish(), timeout=300)
        published = time.time()
        total = events * endpoints
        deadline = time.time() + 600
        while len(rx.hits) < total and time.time() < deadline:
            time.sleep(0.2)
        done = time.time()
        lat = []
        for at, body in rx.hits:
            ts = _json.loads(body)["timestamp"]
            sent = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp()
            lat.append((at - sent) * 1000)
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
        print(f"\nnotify benchmark: {events} events x {endpoints} endpoints on a local receiver, release build, "
              f"offered at {rate:g} events/s" if rate > 0 else f"\nnotify benchmark: {events} events x {endpoints} endpoints, one burst")
        print(f"published in {published - start:.1f} s; delivered {len(rx.hits)}/{total} in {done - start:.1f} s "
              f"= {len(rx.hits) / (done - start):.0f} deliveries/s")
        print(f"event-to-delivery latency p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms (target >= 2000/s, p99 < 200 ms)")
    finally:
        stack.stop()


def bench_scan(bin_dir):
    """Full scan (all 12 services, one region) of moto's seeded account through the platform:
    trigger over REST, wait for completion; wall time, resources/s, API calls/s. Median of ROUNDS."""
    import json
    from conftest import start_moto, stop_moto
    scale = int(os.environ.get("BENCH_SCAN_SCALE", "15"))
    moto, endpoint = start_moto()
    stack = Stack(bin_dir=bin_dir, limited_gateway=False, identity_replicas=1, extra_env={"VIGIL_LOG_LEVEL": "warning"})
    try:
        manifest = json.loads(subprocess.run(["python3", os.path.join(os.path.dirname(__file__), "aws-seed.py"), endpoint,
                                              "--regions", "us-east-1", "--scale", str(scale)],
                                             capture_output=True, text=True, check=True).stdout)
        stack.start()
        r = Client(stack.url).post("/auth/signup", {"email": unique_email("bench"), "password": "bench password 1",
                                                    "full_name": "Bench", "workspace_name": "Bench"})
        c = Client(stack.url, token=r.json()["access_token"])
        conn = c.post("/connections/", {"name": "bench", "provider": "aws", "settings": {"regions": ["us-east-1"], "endpoint_url": endpoint},
                                        "credentials": {"access_key_id": manifest["access_key_id"],
                                                        "secret_access_key": manifest["secret_access_key"]}}).json()["id"]
        runs = []
        for i in range(ROUNDS + 1):
            t0 = time.perf_counter()
            scan_id = c.post("/scans/trigger", {"connection_id": conn}).json()["id"]
            while True:
                scan = c.get(f"/scans/{scan_id}").json()
                if scan["status"] in ("completed", "failed", "canceled"):
                    break
                time.sleep(0.01)
            wall = time.perf_counter() - t0
            assert scan["status"] == "completed" and scan["complete"], scan
            if i > 0:  # the first scan warms moto's lazily created regional backends
                runs.append((wall, scan))
        wall, scan = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        print(f"\nscan benchmark: seeded moto account (scale {scale}), 12 services x 1 region, release build, "
              f"median of {len(runs)} scans, trigger-to-completed over REST")
        print(f"wall time {wall:.2f} s (target < 5 s for ~100 resources); all runs: " + ", ".join(f"{w:.2f}" for w, _ in runs))
        print(f"resources {scan['resources_scanned']} -> {scan['resources_scanned'] / wall:.0f} resources/s; "
              f"checks {scan['checks_evaluated']} -> {scan['checks_evaluated'] / wall:.0f} checks/s; "
              f"AWS API calls {scan['api_calls']} -> {scan['api_calls'] / wall:.0f} calls/s; findings {sum(scan['findings_count'].values())}")
    finally:
        stack.stop()
        stop_moto(moto)


def main():
    what, bin_dir = sys.argv[1], sys.argv[2]
    if what == "notify":
        return bench_notify(bin_dir)
    if what == "scan":
        return bench_scan(bin_dir)
    assert what == "gateway", "benchmarks: gateway, notify, scan"
    replicas = int(os.environ.get("BENCH_IDENTITY_REPLICAS", "1"))
    stack = Stack(bin_dir=bin_dir, limited_gateway=False, identity_replicas=replicas,
                  extra_env={"VIGIL_RATE_BURST": "100000000", "VIGIL_RATE_STEADY": "1000000000", "VIGIL_LOG_LEVEL": "warning"})
    try:
        stack.start()
        r = Client(stack.url).post("/auth/signup", {"email": unique_email("bench"), "password": "bench password 1",
                                                    "full_name": "Bench", "workspace_name": "Bench"})
        token = r.json()["access_token"]
        key = Client(stack.url, token=token).post("/api-keys/", {"name": "bench"}).json()["key"]
        # The machine is shared and noisy: (b) and (c) alternate for ROUNDS rounds; medians are reported.
        targets = [("(a) GET /status (no bus)", stack.url + "/status", []),
                   ("(b) GET /api/v1/ping (1 bus request)", stack.url + "/api/v1/ping", []),
                   ("(c) GET /api/v1/auth/me (API key)", stack.url + "/api/v1/auth/me", [f"x-api-key: {key}"])]
        runs = {name: [] for name, _, _ in targets}
        for _ in range(ROUNDS):
            for name, url, headers in targets:
                runs[name].append(wrk(url, headers))
        rows = [(name, sorted(runs[name], key=lambda r: r[0])[len(runs[name]) // 2]) for name, _, _ in targets]
        print(f"\ngateway benchmark: wrk -t2 -c32 -d{DURATION} x {ROUNDS} rounds (median), release build, "
              f"{replicas} identity replica(s), 2 cores shared by wrk, NATS, PostgreSQL and services")
        print(f"{'route':40} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for name, (rps, p50, p99, bad) in rows:
            print(f"{name:40} {rps:10.0f} {p50:8.2f} {p99:8.2f} {bad:8d}")
        ratio = rows[2][1][0] / rows[1][1][0]
        per_round = [c[0] / b[0] for b, c in zip(runs[targets[1][0]], runs[targets[2][0]])]
        print(f"(c)/(b) = {ratio:.0%} (target >= 50%); per round: " + ", ".join(f"{r:.0%}" for r in per_round))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
