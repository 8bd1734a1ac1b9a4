"""compose.yaml and the Dockerfile cannot run here (no Docker engine); check their structure."""
import os
import re
import signal
import subprocess
import time

import yaml

from conftest import ROOT, SERVICES


def compose(env=None):
    """compose.yaml as Compose reads it: `${VAR:-default}` and `${VAR:?message}` interpolated from `env`."""
    env = env or {}
    text = open(os.path.join(ROOT, "compose.yaml")).read()

    def sub(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env:
            return env[name]
        assert op == ":-" or op == ":?", m.group(0)
        return arg if op == ":-" else "x"
    return yaml.safe_load(re.sub(r"\$\{([A-Z0-9_]+)(:-|:\?)([^}]*)\}", sub, text))


def env_file(path):
    return dict(line.split("=", 1) for line in open(os.path.join(ROOT, path)).read().splitlines() if line and not line.startswith("#"))


def test_compose_has_every_service_with_health_check_and_replicas():
    doc = compose()
    services = doc["services"]
    assert {"nats", "postgres"} <= set(services)
    assert "-js" in services["nats"]["command"]
    for name in SERVICES:
        s = services[name]
        assert s["command"] == [f"vigil-{name}"]
        assert s["healthcheck"]["test"] == ["CMD", f"vigil-{name}", "--health"]
        assert int(s["deploy"]["replicas"]) >= 1
        env = s["environment"]
        assert env["VIGIL_NATS_URL"].startswith("nats://nats:") and str(env["VIGIL_JS_REPLICAS"]) == "1"
        assert env["VIGIL_DATABASE_URL"].startswith("postgresql://")
        assert set(s["depends_on"]) == {"nats", "postgres"}
        assert "profiles" not in s
    assert services["gateway"]["environment"]["VIGIL_HTTP_HOST"] == "0.0.0.0"


def test_compose_cluster_profile_three_nats_nodes_and_two_replicas_of_everything():
    doc = compose(env_file("deploy/cluster.env"))
    services = doc["services"]
    nodes = [n for n, s in services.items() if "cluster" in s.get("profiles", [])]
    assert sorted(nodes) == ["nats-1", "nats-2", "nats-3"]
    for n in nodes:
        cmd = services[n]["command"]
        assert "-js" in cmd and cmd[cmd.index("-n") + 1] == n and cmd[cmd.index("--cluster_name") + 1] == "vigil"
        routes = cmd[cmd.index("--routes") + 1].split(",")
        assert sorted(r.split("//")[1].split(":")[0] for r in routes) == sorted(set(nodes) - {n})
        assert services[n]["volumes"][0].split(":")[0] in doc["volumes"]
    for name in SERVICES:
        env = services[name]["environment"]
        assert int(services[name]["deploy"]["replicas"]) == 2, name
        assert sorted(u.split("//")[1].split(":")[0] for u in env["VIGIL_NATS_URL"].split(",")) == nodes
        assert str(env["VIGIL_JS_REPLICAS"]) == "3"


def test_kubernetes_manifests_validate_and_describe_the_cluster():
    import kubernetes_validate
    docs = []
    for f in sorted(os.listdir(os.path.join(ROOT, "deploy", "k8s"))):
        for d in yaml.safe_load_all(open(os.path.join(ROOT, "deploy", "k8s", f))):
            if d:
                kubernetes_validate.validate(d, "1.30", strict=True)
                docs.append(d)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    nats = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "nats")
    assert nats["spec"]["replicas"] == 3 and ("Service", "nats") in kinds
    for name in SERVICES:
        dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
        assert dep["spec"]["replicas"] >= 2, name
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == [f"vigil-{name}"] and c["readinessProbe"]["exec"]["command"] == [f"vigil-{name}", "--health"]
        env = {e["name"]: e for e in c["env"]}
        assert env["VIGIL_JS_REPLICAS"]["value"] == "3" and len(env["VIGIL_NATS_URL"]["value"].split(",")) == 3
        assert "secretKeyRef" in env["VIGIL_DATABASE_URL"]["valueFrom"]
    assert ("Service", "gateway") in kinds and ("PodDisruptionBudget", "gateway") in kinds


def test_dockerfile_builds_the_same_executables():
    docker = open(os.path.join(ROOT, "Dockerfile")).read()
    package = open(os.path.join(ROOT, "Package.swift")).read()
    assert "swift build -c release" in docker and "vigil-*" in docker
    for name in SERVICES:
        assert f'.executable(name: "vigil-{name}"' in package
    for pkg in ("libnats", "libsodium", "libpq", "libssl", "openssh-client"):
        assert pkg in docker
    # Every source tree a target lives in is copied into the build stage (the connector is in clients/).
    for tree in ("libs", "services", "clients"):
        assert f"COPY {tree} {tree}" in docker and f'"{tree}/' in package


def test_sigterm_stops_a_replica_gracefully(stack):
    stack.spawn("notifier", name="notifier-extra")
    proc = stack.procs["notifier-extra"]
    deadline = time.time() + 30
    while time.time() < deadline and "service started" not in stack.log("notifier-extra"):
        time.sleep(0.1)
    assert "service started" in stack.log("notifier-extra")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    # The health check tells a running service from a missing one.
    env = stack.env
    ok = subprocess.run([os.path.join(stack.bin_dir, "vigil-identity"), "--health"], env=env, timeout=20)
    assert ok.returncode == 0
    missing = subprocess.run([os.path.join(stack.bin_dir, "vigil-identity"), "--health"],
                             env=dict(env, VIGIL_NATS_URL="nats://127.0.0.1:1"), timeout=30)
    assert missing.returncode != 0


def test_make_run_keeps_postgres_durable():
    """`make run` starts PostgreSQL with VIGIL_PG_DURABLE=1: fsync, synchronous commits and full-page writes stay on
    (a power loss must not corrupt a self-hosted workspace); the test clusters turn them off."""
    import shutil
    import tempfile

    from conftest import free_port
    tmp = tempfile.mkdtemp(prefix="vigil-durable-")  # readable by the postgres user, unlike pytest's tmp_path
    os.chmod(tmp, 0o755)
    run = open(os.path.join(ROOT, "scripts", "run")).read()
    assert "VIGIL_PG_DURABLE=1 scripts/pg-temp start" in run
    for durable, want in (("1", "on"), ("0", "off")):
        d, port = os.path.join(tmp, f"pg{durable}"), free_port()
        env = dict(os.environ, VIGIL_PG_DURABLE=durable)
        subprocess.run([os.path.join(ROOT, "scripts", "pg-temp"), "start", d, str(port)], check=True, env=env)
        try:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                got = subprocess.run(["psql", "-X", "-tA", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", f"SHOW {setting}"],
                                     capture_output=True, text=True, check=True).stdout.strip()
                assert got == want, (durable, setting, got)
        finally:
            subprocess.run([os.path.join(ROOT, "scripts", "pg-temp"), "stop", d], check=True)
    shutil.rmtree(tmp, ignore_errors=True)
