"""Behind a real PgBouncer in transaction pooling mode, with reads pointed at a second URL: every service runs
with VIGIL_DATABASE_POOLER=transaction (no session state across transactions: no named prepared statements,
the tenant scope set inside each transaction), migrations on a direct connection, and autocommit reads on
VIGIL_DATABASE_READ_URL (here a read-only session of the same server, as a replica would be: a write sent there
would fail). Two workspaces working at once through four server connections see only their own rows."""
import os
import subprocess
import threading
import time
import uuid

from conftest import Client, Stack, free_port, wait_port

DB_SERVICES = ["identity", "scan-orchestrator", "findings", "remediation", "billing", "notifier"]


def sql(stack, statement, port=None):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port or stack.pg_port), "-U", "postgres", "-d", "vigil", "-tAc", statement],
                          capture_output=True, text=True, check=True).stdout.strip()


def start_pgbouncer(stack):
    d = os.path.join(stack.tmp, "pgbouncer")
    os.makedirs(d)
    port = free_port()
    with open(os.path.join(d, "userlist.txt"), "w") as f:
        f.write('"vigil" ""\n"postgres" ""\n')
    with open(os.path.join(d, "pgbouncer.ini"), "w") as f:
        f.write(f"""[databases]
vigil = host=127.0.0.1 port={stack.pg_port} dbname=vigil
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {d}/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 4
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
logfile = {d}/pgbouncer.log
pidfile = {d}/pgbouncer.pid
""")
    subprocess.run(["chown", "-R", "postgres", d], check=True)
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", "/usr/sbin/pgbouncer", os.path.join(d, "pgbouncer.ini")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def test_services_behind_transaction_pooling_with_reads_on_a_replica_url():
    s = Stack(limited_gateway=False, record_events=False, identity_replicas=1)
    bouncer = None
    try:
        s.start()
        bouncer, port = start_pgbouncer(s)
        env = {"VIGIL_DATABASE_URL": f"postgresql://vigil@127.0.0.1:{port}/vigil", "VIGIL_DATABASE_POOLER": "transaction",
               "VIGIL_DATABASE_MIGRATION_URL": f"postgresql://vigil@127.0.0.1:{s.pg_port}/vigil",
               "VIGIL_DATABASE_READ_URL": f"postgresql://vigil@127.0.0.1:{s.pg_port}/vigil?application_name=vigil-read"
                                          f"&options=-c%20default_transaction_read_only%3Don"}
        for service in DB_SERVICES:
            name = "identity-1" if service == "identity" else service
            s.procs[name].terminate()
            s.procs[name].wait(15)
            s.spawn(service, name=name, **env)
        deadline = time.time() + 30
        while time.time() < deadline and not set(DB_SERVICES) <= {r.get("name") for r in s.bus.gather("$SRV.PING", 0.3)}:
            pass

        owners = []
        for tag in ("a", "b"):
            r = Client(s.url).post("/auth/signup", {"email": f"pgb-{tag}-{uuid.uuid4().hex[:8]}@example.com",
                                                    "password": "correct horse 12", "full_name": "Pool Er", "workspace_name": f"pool-{tag}"})
            assert r.status_code == 201, r.text
            owners.append(Client(s.url, token=r.json()["access_token"]))
        errors = []

        def work(owner, tag):
            mine = set()
            for i in range(40):
                r = owner.post("/api-keys/", {"name": f"{tag}-{i}"})
                if r.status_code != 201:
                    errors.append(r.text)
                    return
                mine.add(r.json()["id"])
                listed = owner.get("/api-keys/?limit=200")
                ids = {k["id"] for k in listed.json()["items"]}
                names = {k["name"] for k in listed.json()["items"]}
                # The workspace's own keys, all of them, and none of the other workspace's.
                if listed.status_code != 200 or not mine <= ids or any(not n.startswith(tag) for n in names if n != "default"):
                    errors.append(f"{tag}: {listed.status_code} {sorted(names)[:5]}")
                    return
                for path in ("/connections", "/findings/?limit=5", "/webhooks/endpoints", "/scans/", "/remediations/"):
                    r = owner.get(path)
                    if r.status_code != 200 or r.json().get("total", len(r.json().get("items", []))) not in (0, None):
                        errors.append(f"{tag} {path}: {r.status_code} {r.text[:200]}")
                        return
        threads = [threading.Thread(target=work, args=(o, t)) for o, t in zip(owners, "ab")]
        [t.start() for t in threads]
        [t.join(120) for t in threads]
        assert not errors, errors[:3]

        # Reads went to the read URL; writes through PgBouncer (a write on the read URL would have failed).
        reads = int(sql(s, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vigil-read'"))
        assert reads > 0
        stats = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "pgbouncer", "-tAc", "SHOW STATS"],
                               capture_output=True, text=True, check=True).stdout
        vigil = [line.split("|") for line in stats.splitlines() if line.startswith("vigil|")]
        assert vigil and int(vigil[0][1]) >= 80, stats  # total transactions through the pooler
        servers = int(sql(s, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'vigil' AND application_name <> 'vigil-read' "
                             "AND backend_type = 'client backend' AND usename = 'vigil' AND client_addr IS NOT NULL"))
        print(f"pgbouncer: {vigil[0][1]} transactions over {servers} server connections; {reads} read-replica connections")
    finally:
        if bouncer:
            bouncer.terminate()
            bouncer.wait(10)
        s.stop()
