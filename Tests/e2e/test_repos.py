"""Repositories (the code-security API): a generated git repository with secrets of many kinds planted in its
tree and only in its history (a later commit removed them, or they live on another branch), decoys of every
"not a secret" kind, a lockfile, a binary file, a symlink out of the tree and a file over the size limit.
Every planted secret is found at the right file, line and commit; nothing on a decoy; no secret value in any
API response, service log or database dump; a re-scan after removing a secret keeps it open as
`in_history_only`; bad clone URLs and unavailable scan types are refused with clear errors; another
workspace cannot see the repository."""
import base64
import json
import os
import random
import string
import subprocess
import time
import zlib

import pytest

from conftest import Client
from test_cli import cli  # noqa: F401  (the logged-in CLI fixture)

RNG = random.Random(42)
ALNUM = string.ascii_letters + string.digits


def rnd(n, alphabet=ALNUM):
    return "".join(RNG.choice(alphabet) for _ in range(n))


def github_token():
    body = rnd(30)
    crc = zlib.crc32(body.encode())
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = ""
    while crc:
        out = digits[crc % 62] + out
        crc //= 62
    return "ghp_" + body + out.rjust(6, "0")


def git(repo, *args, env=None):
    e = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.com", GIT_COMMITTER_NAME="Dev",
             GIT_COMMITTER_EMAIL="dev@example.com", **(env or {}))
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True, env=e).stdout.strip()


def write(repo, path, text):
    full = os.path.join(repo, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def commit(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def build_repo(root):
    """The planted repository: returns (path, secrets {value: expectation}, decoy values)."""
    repo = os.path.join(root, "planted")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    aws_id, aws_secret = "AKIA" + rnd(16, string.ascii_uppercase + "234567"), rnd(40)
    stripe, pg_pw, generic = "sk_live_" + rnd(24), rnd(16), rnd(22) + "!"
    slack, sendgrid = f"xoxb-{rnd(12, string.digits)}-{rnd(13, string.digits)}-{rnd(24)}", f"SG.{rnd(22)}.{rnd(43)}"
    ghp, npm = github_token(), "npm_" + rnd(36)
    pem_body = "\n".join(rnd(64) for _ in range(6))
    key = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body}\n-----END OPENSSH PRIVATE KEY-----\n"
    write(repo, "README.md", "# Service\n\nRun it with `make`.\n")
    write(repo, "app/settings.py", f"import os\n\nDEBUG = False\nAWS_ACCESS_KEY_ID = \"{aws_id}\"\naws_secret_access_key = \"{aws_secret}\"\n")
    write(repo, ".env", f"PORT=8080\nSTRIPE_SECRET_KEY={stripe}\nDB_PASSWORD={generic}\n")
    write(repo, "deploy/id_ed25519", key)
    write(repo, "app/db.js", f"// database\nconst url = \"postgres://app:{pg_pw}@db.internal:5432/app\";\nmodule.exports = url;\n")
    # Decoys: documentation keys, publishable keys, placeholders, references, UUIDs, lockfile hashes, marked fixtures.
    write(repo, "docs/config.md", "\n".join([
        "Example: AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        f"STRIPE_PUBLISHABLE_KEY=pk_live_{rnd(24)}", "password: changeme", "API_KEY=<YOUR_KEY>", "token: ${GITHUB_TOKEN}",
        "password: {{ .Values.db.password }}", "request_id: 3f2504e0-4f89-41d3-9a0c-0305e82c3301", ""]))
    write(repo, "app/config.py", "import os\nSECRET_KEY = os.environ[\"SECRET_KEY\"]\napi_key = os.getenv('API_KEY')\n"
                                 "password = settings.DATABASE_PASSWORD\ntoken_url = \"https://auth.example.com/oauth/token\"\n")
    write(repo, "package-lock.json", json.dumps({"packages": {"node_modules/left-pad": {
        "integrity": "sha512-" + base64.b64encode(os.urandom(64)).decode(), "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"}}},
        indent=2))
    write(repo, "tests/fixtures/keys.py", f"# fake credentials for the parser tests\nFAKE_STRIPE = \"sk_live_{rnd(24)}\"\n"
                                          f"GH = \"{github_token()[:-1]}x\"  # wrong checksum: not a token\n")
    with open(os.path.join(repo, "assets.bin"), "wb") as f:  # binary: skipped, even with a key-shaped string inside
        f.write(b"\x00\x01\x02" + b"sk_live_" + rnd(24).encode() + b"\x00" * 64)
    os.symlink("/etc/passwd", os.path.join(repo, "passwd-link"))
    os.makedirs(os.path.join(repo, "data"))
    with open(os.path.join(repo, "data/huge.txt"), "w") as f:  # over the 5 MB file limit: skipped, and counted
        f.write(("x" * 1023 + "\n") * 6000 + f"stripe = sk_live_{rnd(24)}\n")
    first = commit(repo, "initial import")
    # Remove the Stripe key from .env (history only from now on) and move lines in settings.
    write(repo, ".env", "PORT=8080\nDB_PASSWORD=" + generic + "\n")
    write(repo, "app/settings.py", f"import os\n\n# settings\nDEBUG = False\nAWS_ACCESS_KEY_ID = \"{aws_id}\"\naws_secret_access_key = \"{aws_secret}\"\n")
    second = commit(repo, "move the stripe key to the vault")
    # Another branch with tokens never merged into main: history only.
    git(repo, "checkout", "-q", "-b", "feature/ci")
    write(repo, "scripts/publish.sh", f"#!/bin/sh\nexport GITHUB_TOKEN={ghp}\nexport NPM_TOKEN={npm}\ncurl -d x {slack}\n")
    feature = commit(repo, "ci publishing")
    git(repo, "checkout", "-q", "main")
    write(repo, "app/mail.py", f"SENDGRID_API_KEY = \"{sendgrid}\"\n")
    third = commit(repo, "mail")
    expected = {
        aws_id: dict(check="repo.secrets.cloud_key", file="app/settings.py", line=5, commit=first, history=False),
        aws_secret: dict(check="repo.secrets.cloud_key", file="app/settings.py", line=6, commit=first, history=False),
        stripe: dict(check="repo.secrets.payment_key", file=".env", line=2, commit=first, history=True),
        generic: dict(check="repo.secrets.generic", file=".env", line=2, commit=first, history=False),
        pem_body: dict(check="repo.secrets.private_key", file="deploy/id_ed25519", line=1, commit=first, history=False),
        pg_pw: dict(check="repo.secrets.connection_url", file="app/db.js", line=2, commit=first, history=False),
        ghp: dict(check="repo.secrets.vcs_token", file="scripts/publish.sh", line=2, commit=feature, history=True),
        npm: dict(check="repo.secrets.vcs_token", file="scripts/publish.sh", line=3, commit=feature, history=True),
        slack: dict(check="repo.secrets.saas_token", file="scripts/publish.sh", line=4, commit=feature, history=True),
        sendgrid: dict(check="repo.secrets.saas_token", file="app/mail.py", line=1, commit=third, history=False),
    }
    return repo, expected, dict(first=first, second=second, third=third, feature=feature)


def wait_batch(client, repo_id, batch_id, timeout=120):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        p = client.get(f"/repositories/{repo_id}/scans/{batch_id}/progress").json()
        seen.append(p["phase"])
        if p["status"] in ("completed", "failed", "canceled") and (p["findings_ingested"] or p["status"] != "completed"):
            return p, seen
        time.sleep(0.3)
    raise AssertionError(f"scan batch did not finish: {seen[-5:]}")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return build_repo(str(tmp_path_factory.mktemp("repos")))


def test_secrets_scan_of_tree_and_history(stack, signup, planted):
    owner, _, _ = signup("repos")
    path, expected, commits = planted
    r = owner.post("/repositories", {"name": "planted", "clone_url": f"file://{path}"})
    assert r.status_code == 201, r.text
    repo = r.json()
    assert repo.get("default_branch") is None and repo["archived"] is False and repo["full_name"].endswith("planted")
    assert owner.get("/repositories").json()["total"] == 1
    assert owner.get(f"/repositories/{repo['id']}").json()["clone_url"] == f"file://{path}"

    r = owner.post(f"/repositories/{repo['id']}/scans", {"scan_type": "secrets_scan"})
    assert r.status_code == 202, r.text
    batch = r.json()
    assert batch["status"] == "queued" and batch["scan_type"] == "secrets_scan"
    progress, phases = wait_batch(owner, repo["id"], batch["id"])
    assert progress["status"] == "completed", progress
    counters = progress["repositories"][0]["counters"]
    assert counters["commits"] == 4 and counters["skipped_large"] == 1 and counters["skipped_binary"] == 1, counters
    assert counters["secrets"] >= len(expected)

    results = owner.get(f"/repositories/{repo['id']}/scans/{batch['id']}/results").json()
    found = results["findings"]
    text = json.dumps(results) + owner.get(f"/repositories/{repo['id']}/findings?limit=200").text
    for value, want in expected.items():
        assert value not in text, "a secret value is in the API response"
        match = [f for f in found if f["check_id"] == want["check"] and f["file"] == want["file"]
                 and (f.get("line") == want["line"] or f.get("commit_line") == want["line"])]
        assert match, f"missed {want} in {[(f['check_id'], f['file'], f['line']) for f in found]}"
        f = match[0]
        assert f["commit"] == want["commit"], (want, f)
        assert f["in_history_only"] is want["history"], (want, f)
        assert "…" in f["preview"]
    # Nothing else: every finding is one of the planted secrets (decoys, fixtures, lockfile, binary, huge file: none).
    planted_files = {w["file"] for w in expected.values()}
    assert {f["file"] for f in found} <= planted_files, sorted({f["file"] for f in found} - planted_files)
    assert len(found) == len(expected), [(f["check_id"], f["file"], f["line"], f["detector"]) for f in found]

    # The same findings in the one findings pipeline.
    listed = owner.get("/findings/?provider=repo&limit=200").json()
    assert listed["total"] == len(expected)

    # Remove the database URL from the tree: a re-scan keeps it open, now in history only (rotate the password!).
    write(path, "app/db.js", "// database\nconst url = process.env.DATABASE_URL;\nmodule.exports = url;\n")
    commit(path, "read the database url from the environment")
    batch2 = owner.post(f"/repositories/{repo['id']}/scans", {"scan_type": "secrets_scan"}).json()
    progress, _ = wait_batch(owner, repo["id"], batch2["id"])
    assert progress["status"] == "completed"
    results2 = owner.get(f"/repositories/{repo['id']}/scans/{batch2['id']}/results").json()["findings"]
    db = [f for f in results2 if f["file"] == "app/db.js"]
    assert len(db) == 1 and db[0]["in_history_only"] is True and db[0]["commit"] == commits["first"]
    finding = owner.get(f"/findings/?check_id=repo.secrets.connection_url").json()["items"][0]
    assert finding["status"] == "open" and finding["evidence"]["in_history_only"] is True
    batches = owner.get(f"/repositories/{repo['id']}/scans?scan_type=secrets_scan").json()
    assert batches["total"] == 2 and batches["items"][0]["id"] == batch2["id"]

    # The repository's findings (reference 002): lifecycle statuses over ours, every change in the finding-events feed.
    listed = owner.get(f"/repositories/{repo['id']}/findings?limit=200").json()
    assert listed["total"] == len(expected) and listed["skip"] == 0
    assert listed["items"][0]["severity"] == "critical"
    assert all(f["scan_type"] == "secrets_scan" and f["status"] == "open" and f["file"] for f in listed["items"])
    pg = next(f for f in listed["items"] if f["file"] == "app/db.js")
    assert pg["in_history_only"] is True and pg["scan_batch_id"] == batch2["id"]
    generic_finding = next(f for f in listed["items"] if f["check_id"] == "repo.secrets.generic")
    r = owner.patch(f"/repositories/{repo['id']}/findings/{generic_finding['id']}", {"status": "false_positive", "reason": "a test value"})
    assert r.status_code == 200 and r.json()["status"] == "false_positive", r.text
    assert owner.get(f"/findings/{generic_finding['id']}").json()["status"] == "suppressed"
    r = owner.patch(f"/repositories/{repo['id']}/findings/{pg['id']}", {"status": "needs_manual_review"})
    assert r.json()["status"] == "needs_manual_review"
    assert owner.get(f"/findings/{pg['id']}").json()["status"] == "open"  # still an open risk everywhere else
    r = owner.patch(f"/repositories/{repo['id']}/findings/{pg['id']}", {"status": "deleted"})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "body.status"
    assert owner.get(f"/repositories/{repo['id']}/findings?status=false_positive").json()["total"] == 1
    assert owner.get(f"/repositories/{repo['id']}/findings?status=needs_manual_review").json()["total"] == 1
    assert owner.get(f"/repositories/{repo['id']}/findings?status=open").json()["total"] == len(expected) - 2
    assert owner.get(f"/repositories/{repo['id']}/findings?scan_type=sbom_scan").json()["total"] == 0
    events = owner.get(f"/finding-events?repository_id={repo['id']}&scan_type=secrets_scan&limit=200").json()["items"]
    reasons = [e.get("reason") or "" for e in events]
    assert any(x.startswith("false_positive") for x in reasons) and any(x.startswith("needs_manual_review") for x in reasons)
    assert sum(1 for e in events if e["event_type"] == "opened") == len(expected)
    other, _, _ = signup("repospy")
    assert other.get(f"/repositories/{repo['id']}/findings/{pg['id']}").status_code == 404
    assert other.get(f"/repositories/{repo['id']}/findings").status_code == 404
    assert other.patch(f"/repositories/{repo['id']}/findings/{pg['id']}", {"status": "ignored"}).status_code == 404

    # No secret value anywhere: service logs and a dump of the database.
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "vigil"], capture_output=True,
                          text=True, check=True).stdout
    logs = "".join(stack.log(n) for n in ("gateway", "scan-orchestrator", "findings", "notifier"))
    for value in expected:
        assert value not in dump and value not in logs, "a secret value leaked into the database or the logs"


def test_repository_input_and_isolation(stack, signup, planted):
    owner, _, _ = signup("repoin")
    path, _, _ = planted
    for bad, why in [("ftp://example.com/x.git", "clone_url"), ("-oProxyCommand=touch /tmp/x", "clone_url"), ("", "clone_url"),
                     ("https://user:pw@github.com/a/b.git", "password")]:
        r = owner.post("/repositories", {"clone_url": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["issues"][0]["path"] == "body.clone_url", r.text
        if why:
            assert why in r.text
    r = owner.post("/repositories", {"clone_url": f"file://{path}", "credentials": {"token": "has spaces in it"}})
    assert r.status_code == 422 and "credentials.token" in r.text
    repo = owner.post("/repositories", {"clone_url": f"file://{path}", "default_branch": "main",
                                        "credentials": {"token": "tok_" + rnd(30)}}).json()
    assert repo["credentials"]["token"].endswith("****") and len(repo["credentials"]["token"]) == 8
    for t in ("deep_ai_scan",):
        r = owner.post(f"/repositories/{repo['id']}/scans", {"scan_type": t})
        assert r.status_code == 422 and r.json()["error"] == "scan_type_unavailable", r.text
    r = owner.post(f"/repositories/{repo['id']}/scans", {"scan_type": "fast"})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "body.scan_type"
    assert owner.get("/repositories?limit=0").status_code == 422
    assert owner.get("/repositories?skip=-1").status_code == 422
    other, _, _ = signup("repoother")
    assert other.get(f"/repositories/{repo['id']}").status_code == 404
    assert other.post(f"/repositories/{repo['id']}/scans", {"scan_type": "secrets_scan"}).status_code == 404
    assert other.get("/repositories").json()["total"] == 0
    # A branch that does not exist: the scan fails with that reason.
    bad = owner.post("/repositories", {"clone_url": f"file://{path}", "default_branch": "nope"}).json()
    batch = owner.post(f"/repositories/{bad['id']}/scans", {"scan_type": "secrets_scan"}).json()
    progress, _ = wait_batch(owner, bad["id"], batch["id"])
    assert progress["status"] == "failed"
    assert "no branch nope" in owner.get(f"/repositories/{bad['id']}/scans/{batch['id']}").json()["error"]


def test_cli_connects_and_scans_a_repository(stack, cli, planted):  # noqa: F811
    from test_cli import run
    _, env = cli
    path, expected, _ = planted
    r = run("connect", "repo", f"file://{path}", "--name", "planted-cli", "--branch", "main", env=env)
    assert r.returncode == 0, r.stderr
    r = run("scan", "planted-cli", "--fail-on", "critical", env=env)
    assert r.returncode == 3, (r.stdout, r.stderr)  # critical secrets are open
    findings = json.loads(run("findings", "list", "--connection", "planted-cli", "--json", env=env).stdout)
    assert {f["check_id"] for f in findings} >= {"repo.secrets.cloud_key", "repo.secrets.private_key", "repo.secrets.vcs_token"}
    assert not any(v in json.dumps(findings) for v in expected)
    r = run("connect", "repo", "ftp://example.com/x.git", env=env)
    assert r.returncode == 1 and "clone_url" in r.stderr


def test_hostile_repositories_end_cleanly(stack, signup, tmp_path):
    """A 100 MB blob, a binary file, symlinks out of the tree and a submodule pointing at the metadata address:
    the scan completes with them skipped (nothing fetched, nothing read outside the mirror). A very deep history
    under a short time limit: the scan fails with that reason instead of running on."""
    owner, _, _ = signup("hostile")
    repo = str(tmp_path / "hostile")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    with open(os.path.join(repo, "blob.bin"), "wb") as f:
        f.truncate(100 << 20)  # 100 MB of zeros
    with open(os.path.join(repo, "tool.exe"), "wb") as f:
        f.write(b"MZ\x00\x00" + b"ghp_" + rnd(36).encode() + b"\x00" * 100)
    os.symlink("/etc/shadow", os.path.join(repo, "shadow"))
    os.symlink("../../../../..", os.path.join(repo, "up"))
    key = "sk_live_" + rnd(24)
    write(repo, "billing.py", f"STRIPE = \"{key}\"\n")
    write(repo, ".gitmodules", '[submodule "evil"]\n\tpath = vendor/evil\n\turl = http://169.254.169.254/evil.git\n')
    git(repo, "add", "-A")
    git(repo, "update-index", "--add", "--cacheinfo", "160000,1111111111111111111111111111111111111111,vendor/evil")
    git(repo, "commit", "-q", "-m", "hostile")
    r = owner.post("/repositories", {"clone_url": f"file://{repo}"}).json()
    batch = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "secrets_scan"}).json()
    progress, _ = wait_batch(owner, r["id"], batch["id"], timeout=180)
    assert progress["status"] == "completed", owner.get(f"/scans/{batch['id']}").json()
    counters = progress["repositories"][0]["counters"]
    assert counters["skipped_large"] == 1 and counters["skipped_binary"] == 1, counters
    found = owner.get(f"/repositories/{r['id']}/scans/{batch['id']}/results").json()["findings"]
    assert [(f["file"], f["check_id"]) for f in found] == [("billing.py", "repo.secrets.payment_key")]

    # 100,000 commits (fast-import) and a one-second limit.
    deep = str(tmp_path / "deep")
    subprocess.run(["git", "init", "-q", "-b", "main", deep], check=True)
    p = subprocess.Popen(["git", "-C", deep, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    for c in range(100_000):
        data = f"line {c}\n".encode()
        msg = b"c"
        p.stdin.write(b"commit refs/heads/main\ncommitter D <d@e> %d +0000\ndata 1\n%s\nM 100644 inline f%d.txt\ndata %d\n%s\n"
                      % (1700000000 + c, msg, c % 50, len(data), data))
    p.stdin.close()
    assert p.wait() == 0
    stack.restart("scan-orchestrator", VIGIL_REPO_SCAN_SECONDS="1")
    try:
        r = owner.post("/repositories", {"clone_url": f"file://{deep}"}).json()
        started = time.time()
        batch = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "secrets_scan"}).json()
        progress, _ = wait_batch(owner, r["id"], batch["id"], timeout=120)
        assert progress["status"] == "failed" and time.time() - started < 60
        error = owner.get(f"/repositories/{r['id']}/scans/{batch['id']}").json()["error"]
        assert "1 s" in error or "ran out of time" in error, error
    finally:
        stack.restart("scan-orchestrator")
    # With the usual limit the same history is scanned, and progress shows the phases and counters while it runs.
    batch = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "secrets_scan"}).json()
    live = []
    deadline = time.time() + 180
    while time.time() < deadline:
        p = owner.get(f"/repositories/{r['id']}/scans/{batch['id']}/progress").json()
        if p["status"] == "running" and p["repositories"][0].get("counters"):
            live.append((p["phase"], p["percent_complete"], p["repositories"][0]["counters"]))
        if p["status"] in ("completed", "failed") and p["findings_ingested"]:
            break
        time.sleep(0.2)
    assert p["status"] == "completed" and p["repositories"][0]["counters"]["commits"] == 100_000, p
    assert live, "no live progress was seen while the scan ran"
    # "finalizing": the part is done and the scan waits for its completion to be recorded (a poll on a slow
    # machine can land there).
    assert {ph for ph, _, _ in live} <= {"walking_history", "reading_files", "fetching", "finalizing"}, live
    reading = [c for ph, _, c in live if ph == "reading_files"]
    assert reading and all(c["commits"] == 100_000 and c["files_total"] > 0 for c in reading), live[-3:]
    assert any(0 < c["files_scanned"] < c["files_total"] for c in reading), reading[:3]
    percents = [pc for _, pc, _ in live]
    assert percents == sorted(percents) and all(0 <= pc < 100 for pc in percents), percents


class ForgeAPI:
    """Records pull-request calls the way GitHub's REST API takes them and answers like it (201 with html_url and number)."""

    def __init__(self):
        import http.server
        import threading
        self.requests, self.status = [], 201
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, dict(self.headers), body))
                payload = json.dumps({"html_url": "https://forge.example/acme/planted/pull/7", "number": 7} if outer.status == 201
                                     else {"message": "Validation Failed"}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fix_pushed_as_a_branch_to_a_git_remote(stack, signup, tmp_path):
    """Secrets fixed in a worker, the diff redacted (and applicable when revealed), the fix pushed as a new branch
    to a real git remote served by `git http-backend` with a token: the secrets are gone from the branch tip, the
    default branch is untouched, the fixed Python still compiles."""
    from gitserver import GitHTTPServer, bare_remote
    source, expected, commits = build_repo(str(tmp_path))
    token = "remote-" + rnd(24)
    remote_root = str(tmp_path / "served")
    os.makedirs(remote_root)
    remote = bare_remote(source, remote_root, "acme/planted.git")
    server = GitHTTPServer(remote_root, token)
    try:
        owner, _, _ = signup("repofix")
        r = owner.post("/repositories", {"clone_url": server.url("acme/planted.git"), "credentials": {"token": "wrong-token-value"}})
        assert r.status_code == 201, r.text
        bad = owner.post(f"/repositories/{r.json()['id']}/scans", {"scan_type": "secrets_scan"}).json()
        progress, _ = wait_batch(owner, r.json()["id"], bad["id"])
        assert progress["status"] == "failed"  # the remote refuses a wrong token
        repo = owner.post("/repositories", {"name": "served", "clone_url": server.url("acme/planted.git"),
                                            "credentials": {"token": token}}).json()
        batch = owner.post(f"/repositories/{repo['id']}/scans", {"scan_type": "secrets_scan"}).json()
        progress, _ = wait_batch(owner, repo["id"], batch["id"])
        assert progress["status"] == "completed", progress
        findings = owner.get(f"/repositories/{repo['id']}/findings?limit=200").json()["items"]
        assert len(findings) == len(expected)
        in_tree = [f for f in findings if not f["in_history_only"]]
        history = [f for f in findings if f["in_history_only"]]
        ids = [f["id"] for f in in_tree] + [history[0]["id"]]

        # Bad input first: no findings, a finding of another repository, another workspace, a bad variable name.
        assert owner.post(f"/repositories/{repo['id']}/fixes", {"title": "t", "instructions": "i", "finding_ids": []}).status_code == 422
        r = owner.post(f"/repositories/{repo['id']}/fixes", {"title": "t", "instructions": "i", "finding_ids": [str(__import__("uuid").uuid4())]})
        assert r.status_code == 422 and "not found" in r.json()["issues"][0]["message"], r.text
        r = owner.post(f"/repositories/{repo['id']}/fixes", {"title": "t", "instructions": "i", "finding_ids": ids,
                                                             "options": {"env_names": {ids[0]: "1bad name"}}})
        assert r.status_code == 422 and r.json()["issues"][0]["path"] == "body.options.env_names"
        other, _, _ = signup("repofixspy")
        assert other.post(f"/repositories/{repo['id']}/fixes", {"title": "t", "instructions": "i", "finding_ids": ids}).status_code == 404

        r = owner.post(f"/repositories/{repo['id']}/fixes", {"title": "Move committed secrets to the environment", "finding_ids": ids,
                                                             "instructions": "read every secret from the environment"})
        assert r.status_code == 201, r.text
        fix = r.json()
        assert fix["status"] == "pending" and sorted(fix["finding_ids"]) == sorted(ids)
        assert other.get(f"/repositories/{repo['id']}/fixes/{fix['id']}").status_code == 404
        deadline = time.time() + 120
        while time.time() < deadline:
            p = owner.get(f"/repositories/{repo['id']}/fixes/{fix['id']}/progress").json()
            if p["status"] not in ("pending", "running"):
                break
            time.sleep(0.3)
        fix = owner.get(f"/repositories/{repo['id']}/fixes/{fix['id']}").json()
        assert fix["status"] == "completed", fix
        assert p["steps"] >= 4 and p["elapsed_seconds"] >= 0
        outcomes = {o["finding_id"]: o for o in fix["outcomes"]}
        assert outcomes[history[0]["id"]]["outcome"] == "history_only"
        assert all(outcomes[f["id"]]["outcome"] == "fixed" for f in in_tree), fix["outcomes"]
        assert ".env.example" in fix["files_changed"] and "app/settings.py" in fix["files_changed"]

        # The diff: redacted by default (no secret value), the real patch only for an admin who asks, and it applies.
        d = owner.get(f"/repositories/{repo['id']}/fixes/{fix['id']}/diff").json()
        assert d["redacted"] is True and "os.environ[\"AWS_ACCESS_KEY_ID\"]" in d["diff"], d["diff"][:2000]
        listing = owner.get(f"/repositories/{repo['id']}/fixes").text
        for value in expected:
            assert value not in d["diff"] and value not in listing and value not in json.dumps(fix)
        viewer_key = owner.post("/api-keys/", {"name": "ro", "role": "viewer", "scopes": ["read"]}).json()["key"]
        r = Client(stack.url, api_key=viewer_key).get(f"/repositories/{repo['id']}/fixes/{fix['id']}/diff?reveal=true")
        assert r.status_code == 403, r.text
        patch = owner.get(f"/repositories/{repo['id']}/fixes/{fix['id']}/diff?reveal=true").json()["diff"]
        check = str(tmp_path / "check")
        subprocess.run(["git", "clone", "-q", source, check], check=True)
        subprocess.run(["git", "-C", check, "checkout", "-q", fix["base_commit"]], check=True)
        subprocess.run(["git", "-C", check, "apply", "--check", "-"], input=patch, text=True, check=True)

        # Pushed as a branch: never the default branch; the secrets are gone from the tip; main is untouched.
        r = owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/pull-requests", {"branch_name": "main"})
        assert r.status_code == 422 and "default branch" in r.json()["message"], r.text
        assert owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/pull-requests", {"branch_name": "a..b"}).status_code == 422
        r = owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/pull-requests", {"title": "Secrets out of the code"})
        assert r.status_code == 201, r.text
        pr = r.json()["pull_requests"][0]
        assert pr["state"] == "branch_pushed" and pr["base_branch"] == "main" and pr["branch_name"].startswith("vigil/fix-")
        assert owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/pull-requests", {}).status_code == 409
        assert owner.get(f"/repositories/{repo['id']}/fixes/{fix['id']}").json()["pull_requests"][0]["commit"] == pr["commit"]
        tip = str(tmp_path / "tip")
        subprocess.run(["git", "clone", "-q", "-b", pr["branch_name"], remote, tip], check=True)
        assert git(tip, "rev-parse", "HEAD") == pr["commit"] and git(tip, "rev-parse", "HEAD~1") == fix["base_commit"]
        tree = "".join(open(os.path.join(d, f), errors="ignore").read() for d, _, fs in os.walk(tip) if ".git" not in d for f in fs)
        for value, want in expected.items():
            if not want["history"]:
                assert value not in tree, f"{want['file']} still holds its secret on the fix branch"
        assert not os.path.exists(os.path.join(tip, "deploy/id_ed25519")) and "/deploy/id_ed25519" in open(os.path.join(tip, ".gitignore")).read()
        example = open(os.path.join(tip, ".env.example")).read()
        assert "AWS_ACCESS_KEY_ID=" in example and "SENDGRID_API_KEY=" in example
        assert "process.env.DATABASE_URL" in open(os.path.join(tip, "app/db.js")).read()
        subprocess.run(["python3", "-m", "py_compile", os.path.join(tip, "app/settings.py"), os.path.join(tip, "app/mail.py")], check=True)
        main_tip = git(remote, "rev-parse", "refs/heads/main")
        assert main_tip == commits["third"], "the default branch moved"

        # On a forge (GitHub's API here, for this host): the pull request is opened through the API with the token.
        api = ForgeAPI()
        stack.restart("scan-orchestrator", VIGIL_FORGE_HOSTS=f"127.0.0.1:{server.port}=github@http://127.0.0.1:{api.port}")
        try:
            r = owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/pull-requests", {"branch_name": "vigil/forge", "body": "Rotate them."})
            assert r.status_code == 201, r.text
            opened = r.json()["pull_requests"][0]
            assert opened["provider"] == "github" and opened["state"] == "open" and opened["number"] == 7, opened
            assert opened["url"] == "https://forge.example/acme/planted/pull/7"
            (path, headers, body), = api.requests
            assert path == "/repos/acme/planted/pulls" and headers["Authorization"] == f"Bearer {token}"
            assert body == {"title": fix["title"], "head": "vigil/forge", "base": "main", "body": "Rotate them."}
            assert git(remote, "rev-parse", "refs/heads/vigil/forge")
            api.status = 422
            r = owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/pull-requests", {"branch_name": "vigil/forge-2"}).json()
            assert r["pull_requests"][0]["state"] == "branch_pushed" and "422" in r["pull_requests"][0]["forge_error"]
        finally:
            api.close()
            stack.restart("scan-orchestrator")

        # Lifecycle: a completed fix cannot be canceled; refine re-runs it with a changed option; events audit it all.
        assert owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/cancel").status_code == 409
        assert owner.post(f"/repositories/{repo['id']}/fixes/{fix['id']}/refine", {"instructions": "again"}).status_code == 409  # pushed
        fix2 = owner.post(f"/repositories/{repo['id']}/fixes", {"title": "Only the mail key", "instructions": "x",
                                                                "finding_ids": [next(f["id"] for f in in_tree if f["file"] == "app/mail.py")]}).json()
        r = owner.post(f"/repositories/{repo['id']}/fixes/{fix2['id']}/cancel")
        assert r.status_code in (200, 409), r.text
        deadline = time.time() + 60
        while owner.get(f"/repositories/{repo['id']}/fixes/{fix2['id']}").json()["status"] in ("pending", "running") and time.time() < deadline:
            time.sleep(0.3)
        mail_id = fix2["finding_ids"][0]
        r = owner.post(f"/repositories/{repo['id']}/fixes/{fix2['id']}/refine",
                       {"instructions": "call it MAIL_KEY", "options": {"env_names": {mail_id: "MAIL_KEY"}}})
        assert r.status_code == 200 and r.json()["status"] == "pending", r.text
        deadline = time.time() + 60
        while time.time() < deadline:
            fix2 = owner.get(f"/repositories/{repo['id']}/fixes/{fix2['id']}").json()
            if fix2["status"] not in ("pending", "running"):
                break
            time.sleep(0.3)
        assert fix2["status"] == "completed" and fix2["outcomes"][0]["variable"] == "MAIL_KEY", fix2
        assert "call it MAIL_KEY" in fix2["instructions"]
        assert owner.get(f"/repositories/{repo['id']}/fixes?finding_id={mail_id}").json()["total"] == 2
        audit = owner.get("/webhooks/audit-logs?limit=200").text
        assert "repository.fix_diff_revealed" in audit and "repository.pull_request_created" in audit

        dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "vigil"], capture_output=True,
                              text=True, check=True).stdout
        logs = "".join(stack.log(n) for n in ("gateway", "scan-orchestrator", "findings", "notifier"))
        for value in list(expected) + [token]:
            assert value not in dump and value not in logs, "a secret value leaked into the database or the logs"
        assert {ok for _, _, ok in server.requests} == {True, False}  # the wrong token was refused, the right one used
    finally:
        server.close()


LOCKFILES = {
    "web/package-lock.json": json.dumps({"name": "web", "lockfileVersion": 3, "packages": {
        "": {"name": "web", "dependencies": {"lodash": "^4.17.0"}},
        "node_modules/lodash": {"version": "4.17.20"}, "node_modules/express": {"version": "4.18.2"},
        "node_modules/@babel/core": {"version": "7.23.0"}}}, indent=2),
    "web/package.json": json.dumps({"name": "web", "dependencies": {"lodash": "^4.17.20", "express": "4.18.2"}}, indent=2),
    "tools/yarn.lock": '# yarn lockfile v1\n\n"lodash@^4.17.21":\n  version "4.17.21"\n  resolved "https://registry.yarnpkg.com/lodash"\n\n'
                       'minimist@^1.2.0, minimist@^1.2.5:\n  version "1.2.5"\n',
    "api/requirements.txt": "# pinned\nrequests==2.25.0\nflask==2.3.3  # web\ndjango>=4.0\n-r base.txt\n",
    "worker/poetry.lock": '[[package]]\nname = "requests"\nversion = "2.31.0"\n\n[[package]]\nname = "urllib3"\nversion = "1.26.4"\n\n'
                          '[metadata]\nlock-version = "2.0"\n',
    "svc/go.mod": "module example.com/svc\n\ngo 1.21\n\nrequire (\n\tgolang.org/x/net v0.10.0\n\tgithub.com/google/uuid v1.3.0\n)\n",
    "svc/go.sum": "golang.org/x/net v0.10.0 h1:abc=\ngolang.org/x/net v0.10.0/go.mod h1:def=\ngithub.com/google/uuid v1.3.0 h1:x=\n",
    "cli/Cargo.lock": '[[package]]\nname = "time"\nversion = "0.2.22"\n\n[[package]]\nname = "serde"\nversion = "1.0.190"\n',
    "site/Gemfile.lock": "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (2.0.8)\n    rails (7.1.2)\n      rack (>= 2.2.4)\n\n"
                         "PLATFORMS\n  ruby\n",
    "php/composer.lock": json.dumps({"packages": [{"name": "guzzlehttp/guzzle", "version": "7.4.4"}], "packages-dev": [
        {"name": "phpunit/phpunit", "version": "v10.4.2"}]}),
    "ios/Package.resolved": json.dumps({"pins": [
        {"identity": "swift-nio-http2", "location": "https://github.com/apple/swift-nio-http2.git", "state": {"version": "1.19.1"}},
        {"identity": "swift-log", "location": "https://github.com/apple/swift-log.git", "state": {"version": "1.5.3"}}], "version": 2}),
}
# (purl, advisory ids, severity, fixed version): what the shipped OSV export says about the pinned versions.
VULNERABLE = {
    "pkg:npm/lodash@4.17.20": (["GHSA-35jh-r3h4-6jhm"], "high", "4.17.21"),
    "pkg:npm/minimist@1.2.5": (["GHSA-xvch-5gv4-984h"], "critical", "1.2.6"),
    "pkg:pypi/requests@2.25.0": (["GHSA-j8r2-6x86-q33q"], "medium", "2.31.0"),
    "pkg:pypi/urllib3@1.26.4": (["GHSA-q2q7-5pp4-w6pg"], "high", "1.26.5"),
    "pkg:golang/golang.org/x/net@v0.10.0": (["GHSA-qppj-fm5r-hxr3"], "medium", "0.17.0"),
    "pkg:cargo/time@0.2.22": (["GHSA-wcg3-cvx6-7396"], "medium", "0.2.23"),
    "pkg:gem/rack@2.0.8": (["GHSA-65f5-mfpf-vfhj"], "low", "2.0.9.2"),
    "pkg:composer/guzzlehttp/guzzle@7.4.4": (["GHSA-25mq-v84q-4j7r"], "high", "7.4.5"),
    "pkg:swift/github.com/apple/swift-nio-http2@1.19.1": (["GHSA-w3f6-pc54-gfw7"], "high", "1.19.2"),
}


def test_sbom_scan_of_lockfiles(stack, signup, tmp_path):
    """A CycloneDX 1.5 SBOM (validated against the official schema) from nine lockfile formats; the components the
    shipped OSV export knows as vulnerable become findings with the fixed version; their fixed twins do not."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    repo = str(tmp_path / "deps")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    for path, text in LOCKFILES.items():
        write(repo, path, text)
    git(repo, "add", "--force", "--all")  # --force: a global gitignore may list Package.resolved
    git(repo, "commit", "-q", "-m", "dependencies")
    owner, _, _ = signup("sbom")
    r = owner.post("/repositories", {"clone_url": f"file://{repo}"}).json()
    batch = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "sbom_scan"})
    assert batch.status_code == 202, batch.text
    batch = batch.json()
    assert batch["scan_type"] == "sbom_scan"
    progress, _ = wait_batch(owner, r["id"], batch["id"])
    assert progress["status"] == "completed", progress
    counters = progress["repositories"][0]["counters"]
    assert counters["lockfiles"] == 9 and counters["vulnerable_components"] == len(VULNERABLE), counters

    doc = owner.get(f"/repositories/{r['id']}/scans/{batch['id']}/sbom")
    assert doc.status_code == 200, doc.text
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(doc.text) is None
    sbom = doc.json()
    purls = {c["purl"] for c in sbom["components"]}
    for expected in ["pkg:npm/lodash@4.17.21", "pkg:npm/%40babel/core@7.23.0", "pkg:pypi/flask@2.3.3", "pkg:pypi/django",
                     "pkg:golang/github.com/google/uuid@v1.3.0", "pkg:cargo/serde@1.0.190", "pkg:gem/rails@7.1.2",
                     "pkg:composer/phpunit/phpunit@10.4.2", "pkg:swift/github.com/apple/swift-log@1.5.3", *VULNERABLE]:
        assert expected in purls, (expected, sorted(purls))
    assert counters["components"] == len(sbom["components"])
    assert {v["id"] for v in sbom["vulnerabilities"]} == {i for ids, _, _ in VULNERABLE.values() for i in ids}

    findings = owner.get(f"/repositories/{r['id']}/findings?scan_type=sbom_scan&limit=100").json()["items"]
    got = {f["dependency"]["purl"]: f for f in findings}
    assert set(got) == set(VULNERABLE), sorted(got)
    for purl, (ids, severity, fixed) in VULNERABLE.items():
        f = got[purl]
        assert f["severity"] == severity and f["dependency"]["advisories"] == ids and f["dependency"]["fixed_version"] == fixed, f
        assert f["check_id"] == f"repo.sbom.vulnerable_dependency_{severity}" and f["file"]
    results = owner.get(f"/repositories/{r['id']}/scans/{batch['id']}/results").json()
    assert results["total"] == len(VULNERABLE) and results["by_severity"]["critical"] == 1

    # A fix bumps each dependency to its first fixed version where Vigil edits the manifest; the rest say what to do.
    bump = ["pkg:pypi/requests@2.25.0", "pkg:npm/lodash@4.17.20", "pkg:golang/golang.org/x/net@v0.10.0", "pkg:gem/rack@2.0.8"]
    fix = owner.post(f"/repositories/{r['id']}/fixes", {"title": "Upgrade vulnerable dependencies", "instructions": "bump",
                                                       "finding_ids": [got[p]["id"] for p in bump]})
    assert fix.status_code == 201, fix.text
    fix = fix.json()
    deadline = time.time() + 60
    while fix["status"] in ("pending", "running") and time.time() < deadline:
        time.sleep(0.3)
        fix = owner.get(f"/repositories/{r['id']}/fixes/{fix['id']}").json()
    assert fix["status"] == "completed", fix
    outcome = {o["finding_id"]: o for o in fix["outcomes"]}
    assert [outcome[got[p]["id"]]["outcome"] for p in bump] == ["fixed", "fixed", "fixed", "manual"], fix["outcomes"]
    assert sorted(fix["files_changed"]) == ["api/requirements.txt", "svc/go.mod", "web/package.json"]
    diff = owner.get(f"/repositories/{r['id']}/fixes/{fix['id']}/diff").json()["diff"]
    assert "+requests==2.31.0" in diff and '"lodash": "^4.17.21"' in diff and "golang.org/x/net v0.17.0" in diff, diff
    # The secrets scan's SBOM route says what it is; another workspace sees nothing.
    secrets = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "secrets_scan"}).json()
    wait_batch(owner, r["id"], secrets["id"])
    assert owner.get(f"/repositories/{r['id']}/scans/{secrets['id']}/sbom").status_code == 422
    other, _, _ = signup("sbomspy")
    assert other.get(f"/repositories/{r['id']}/scans/{batch['id']}/sbom").status_code == 404


CODE = {
    "app/handlers.py": ("import subprocess, os, pickle, yaml, hashlib, requests, tempfile\n\n\ndef run(user, cur, app):\n"
                        "    subprocess.call(\"ls \" + user, shell=True)\n"          # 5
                        "    os.system(\"echo \" + user)\n"                          # 6
                        "    eval(user)\n"                                           # 7
                        "    pickle.loads(user)\n"                                   # 8
                        "    yaml.load(user)\n"                                      # 9
                        "    cur.execute(\"SELECT * FROM t WHERE id = %s\" % user)\n"  # 10
                        "    requests.get(\"https://x\", verify=False)\n"            # 11
                        "    hashlib.md5(user)\n"                                    # 12
                        "    app.run(debug=True)\n"                                  # 13
                        "    tempfile.mktemp()\n"),                                  # 14
    # The correctly written twin of every line above: nothing may be reported here.
    "app/safe.py": ("import subprocess, os, yaml, hashlib, requests, json\n\n\ndef run(user, cur, app):\n"
                    "    subprocess.call([\"ls\", user])\n    os.system(\"date\")\n    eval(\"1 + 1\")\n    json.loads(user)\n"
                    "    yaml.safe_load(user)\n    cur.execute(\"SELECT * FROM t WHERE id = %s\", (user,))\n"
                    "    requests.get(\"https://x\")\n    hashlib.sha256(user)\n    hashlib.md5(user, usedforsecurity=False)\n"
                    "    app.run(debug=False)\n"),
    "web/client.js": ("const cp = require(\"child_process\");\nfunction f(user, el, db) {\n"
                      "  cp.exec(\"ls \" + user);\n"                                  # 3
                      "  eval(user);\n"                                               # 4
                      "  el.innerHTML = user;\n"                                      # 5
                      "  db.query(\"SELECT * FROM t WHERE id = \" + user);\n"         # 6
                      "  https.request({host: \"x\", rejectUnauthorized: false});\n"  # 7
                      "  crypto.createHash(\"md5\");\n"                               # 8
                      "  jwt.verify(t, k, {algorithms: [\"none\"]});\n}\n"),          # 9
    "web/safe.js": ("const cp = require(\"child_process\");\nfunction f(user, el, db) {\n  cp.execFile(\"ls\", [user]);\n  cp.exec(\"ls\");\n"
                    "  /a+/.exec(user);\n  el.textContent = user;\n  el.innerHTML = \"<b>static</b>\";\n"
                    "  db.query(\"SELECT * FROM t WHERE id = ?\", [user]);\n  crypto.createHash(\"sha256\");\n"
                    "  jwt.verify(t, k, {algorithms: [\"RS256\"]});\n}\n"),
    "svc/main.go": ("package main\n\nimport (\n\t\"crypto/md5\"\n\t\"crypto/tls\"\n\t\"fmt\"\n\t\"os/exec\"\n)\n\nfunc f(user string, db DB) {\n"
                    "\texec.Command(\"sh\", \"-c\", \"ls \"+user)\n"                  # 11
                    "\t_ = &tls.Config{InsecureSkipVerify: true}\n"                   # 12
                    "\tdb.Query(fmt.Sprintf(\"SELECT * FROM t WHERE id = %s\", user))\n"  # 13
                    "\tmd5.Sum([]byte(user))\n"                                       # 14
                    "\texec.Command(\"ls\", user)\n\t_ = &tls.Config{MinVersion: tls.VersionTLS12}\n"
                    "\tdb.Query(\"SELECT * FROM t WHERE id = $1\", user)\n}\n"),
    "api/Handler.java": ("class Handler {\n  void f(String user, java.sql.Statement st) throws Exception {\n"
                         "    Runtime.getRuntime().exec(\"ls \" + user);\n"             # 3
                         "    st.executeQuery(\"SELECT * FROM t WHERE id = \" + user);\n"  # 4
                         "    MessageDigest.getInstance(\"MD5\");\n"                    # 5
                         "    Runtime.getRuntime().exec(\"ls\");\n    MessageDigest.getInstance(\"SHA-256\");\n  }\n}\n"),
}
EXPECTED_CODE = {
    ("app/handlers.py", 5, "python-subprocess-shell-true", "high"), ("app/handlers.py", 6, "python-subprocess-shell-true", "high"),
    ("app/handlers.py", 7, "python-eval-exec", "high"), ("app/handlers.py", 8, "python-unsafe-deserialization", "high"),
    ("app/handlers.py", 9, "python-unsafe-deserialization", "high"), ("app/handlers.py", 10, "python-sql-string-built", "high"),
    ("app/handlers.py", 11, "python-tls-verification-disabled", "medium"), ("app/handlers.py", 12, "python-weak-hash", "medium"),
    ("app/handlers.py", 13, "python-flask-debug", "medium"), ("app/handlers.py", 14, "python-insecure-tempfile", "low"),
    ("web/client.js", 3, "js-child-process-exec", "high"), ("web/client.js", 4, "js-eval", "high"), ("web/client.js", 5, "js-dom-xss", "medium"),
    ("web/client.js", 6, "js-sql-string-built", "high"), ("web/client.js", 7, "js-tls-verification-disabled", "medium"),
    ("web/client.js", 8, "js-weak-hash", "medium"), ("web/client.js", 9, "js-jwt-none-algorithm", "high"),
    ("svc/main.go", 11, "go-command-through-shell", "high"), ("svc/main.go", 12, "go-tls-insecure-skip-verify", "medium"),
    ("svc/main.go", 13, "go-sql-string-built", "high"), ("svc/main.go", 14, "go-weak-hash", "medium"),
    ("api/Handler.java", 3, "java-runtime-exec", "high"), ("api/Handler.java", 4, "java-sql-string-built", "high"),
    ("api/Handler.java", 5, "java-weak-hash", "medium"),
}


def test_semgrep_scan_with_the_shipped_rules(stack, signup, tmp_path):
    """Semgrep with the rule set shipped in contracts/semgrep (no registry, no network): every planted flaw in Python,
    JavaScript, Go and Java found at its line with its severity; the correctly written twins not; a symlink out of the
    tree not followed; a re-scan after code above a finding moved keeps the finding's identity."""
    repo = str(tmp_path / "code")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    for path, text in CODE.items():
        write(repo, path, text)
    os.symlink("/etc", os.path.join(repo, "etc-link"))
    commit(repo, "code")
    owner, _, _ = signup("semgrep")
    caps = owner.get("/meta/capabilities").json()
    repo_caps = next(p for p in caps["providers"] if p["name"] == "repo")
    assert "semgrep" in repo_caps["services"] and caps["features"]["semgrep"] is True
    r = owner.post("/repositories", {"clone_url": f"file://{repo}"}).json()
    batch = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "semgrep_scan"})
    assert batch.status_code == 202, batch.text
    progress, _ = wait_batch(owner, r["id"], batch.json()["id"], timeout=180)
    assert progress["status"] == "completed", progress
    counters = progress["repositories"][0]["counters"]
    assert counters["rules"] >= 20 and counters["matches"] == len(EXPECTED_CODE), counters
    findings = owner.get(f"/repositories/{r['id']}/findings?scan_type=semgrep_scan&limit=100").json()["items"]
    got = {(f["file"], f["line"], f["code"]["rule"], f["severity"]) for f in findings}
    assert got == EXPECTED_CODE, (sorted(got - EXPECTED_CODE), sorted(EXPECTED_CODE - got))
    assert all(f["code"]["message"] and f["code"]["cwe"].startswith("CWE-") for f in findings)
    eval_finding = next(f for f in findings if f["code"]["rule"] == "python-eval-exec")

    # Two lines added above: the same findings, now two lines lower, keep their ids (and stay open).
    write(repo, "app/handlers.py", "# header\n# more\n" + CODE["app/handlers.py"])
    commit(repo, "header")
    batch2 = owner.post(f"/repositories/{r['id']}/scans", {"scan_type": "semgrep_scan"}).json()
    progress, _ = wait_batch(owner, r["id"], batch2["id"], timeout=180)
    assert progress["status"] == "completed"
    again = owner.get(f"/repositories/{eval_finding['repository_id']}/findings/{eval_finding['id']}").json()
    assert again["line"] == 9 and again["status"] == "open" and again["scan_batch_id"] == batch2["id"], again
    assert owner.get(f"/repositories/{r['id']}/findings?scan_type=semgrep_scan&limit=100").json()["total"] == len(EXPECTED_CODE)
