#!/usr/bin/env python3
"""Gateway benchmark: wrk -t2 -c32 against (a) a route with no bus call, (b) a route with one bus
request to a trivial responder, (c) GET /api/v1/auth/me with an API key. Prints req/s, p50, p99."""
import os
import re
import subprocess
import sys

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


def main():
    what, bin_dir = sys.argv[1], sys.argv[2]
    assert what == "gateway", "only 'gateway' is benchmarked so far"
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
