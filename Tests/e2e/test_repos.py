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

from conftest import psql

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
    text = json.dumps(results)
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
    for t in ("sbom_scan", "semgrep_scan", "deep_ai_scan"):
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
