"""The `vigil` command line against the running stack: login (config mode 600), connect, scan --wait with
progress lines and --fail-on exit codes, findings as table/JSON/CSV/SARIF, show, reports, schedules,
tail, errors with the API's message and correlation id, shell completions."""
import json
import os
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, ROOT
from test_web import sites  # noqa: F401  (the local web sites fixture)

VIGIL = os.path.join(BIN, "vigil")


def run(*args, env=None, timeout=180):
    return subprocess.run([VIGIL, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def cli(stack, signup):
    """The CLI logged in with an API key of a new workspace (its own config directory)."""
    owner, _, _ = signup("cli")
    key = owner.post("/api-keys/", {"name": "ci", "role": "admin"}).json()["key"]
    home = tempfile.mkdtemp(prefix="vigil-cli-")
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_URL", "VIGIL_TOKEN")}
    env.update(XDG_CONFIG_HOME=home, HOME=home)
    r = run("login", "--url", stack.url, "--api-key", key, env=env)
    assert r.returncode == 0, r.stderr
    path = os.path.join(home, "vigil", "config.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert key in open(path).read()
    return owner, env


def test_scan_wait_fail_on_and_findings_formats(stack, cli, sites):  # noqa: F811
    owner, env = cli
    ca = os.path.join(os.path.dirname(sites["ca_pem"]), "ca.pem")
    assert run("connect", "web", sites["planted"]["url"], "--name", "planted", "--ca-file", ca, env=env).returncode == 0
    assert run("connect", "web", sites["twin"]["url"], "--name", "twin", "--ca-file", ca, env=env).returncode == 0

    r = run("scan", "planted", "--fail-on", "high", env=env)
    assert r.returncode == 3, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("scan ") and "queued" in lines[0]
    assert any(" collecting " in l or " finalizing " in l or " queued " in l for l in lines[1:]), lines  # one line per phase, not a bar
    assert any(l.startswith("scan completed:") for l in lines) and "\r" not in r.stdout
    assert "open finding(s) at or above high on planted" in r.stderr
    # Right after the command returns, the findings are final: the JSON list matches the scan's counts.
    findings = json.loads(run("findings", "list", "--connection", "planted", "--json", env=env).stdout)
    assert len(findings) >= 40 and all(f["status"] == "open" for f in findings)
    assert {f["check_id"] for f in findings} >= {"web.exposure.git", "web.secrets.cloud_key"}

    r = run("scan", "twin", "--fail-on", "low", env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)

    table = run("findings", "list", "--min-severity", "critical", env=env).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "SEVERITY", "STATUS"] and all(" critical " in l for l in table[1:])
    csv = run("findings", "list", "--csv", "--check", "web.exposure.git", env=env).stdout.splitlines()
    assert csv[0] == "id,severity,status,rule_code,resource_name,title" and len(csv) == 2 and "web.exposure.git" in csv[1]
    sarif = json.loads(run("findings", "list", "--sarif", "--min-severity", "high", env=env).stdout)
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert {r["level"] for r in sarif["runs"][0]["results"]} == {"error"}
    shown = run("findings", "show", findings[0]["id"], env=env)
    assert shown.returncode == 0 and findings[0]["title"] in shown.stdout and "remediation" in shown.stdout

    # Golden output: a table with fixed columns (the ids and ports differ run to run, so they are left out).
    table = run("findings", "list", "--check", "web.exposure.git,web.secrets.cloud_key,web.tls.no_tls13", "--columns", "severity,rule_code,title",
                env=env).stdout
    assert table == open(os.path.join(ROOT, "Tests", "e2e", "fixtures", "cli-findings-table.txt")).read(), table

    # On a terminal (a pseudo-terminal from `script`), the same scan draws a redrawn progress bar.
    r = subprocess.run(["script", "-qec", f"{VIGIL} scan twin --wait", "/dev/null"], capture_output=True, timeout=180, env=env)
    assert r.returncode == 0 and b"\r[" in r.stdout and b"] 100%" in r.stdout and b"parts" in r.stdout, r.stdout[-500:]

    out = os.path.join(env["HOME"], "report.pdf")
    r = run("report", "generate", "--type", "executive_summary", "--format", "pdf", "-o", out, env=env)
    assert r.returncode == 0, r.stderr
    assert open(out, "rb").read(5) == b"%PDF-"


def test_schedules_tail_errors_and_completions(stack, cli, sites):  # noqa: F811
    owner, env = cli
    ca = os.path.join(os.path.dirname(sites["ca_pem"]), "ca.pem")
    assert run("connect", "web", sites["planted"]["url"], "--name", "site", "--ca-file", ca, env=env).returncode == 0
    r = run("schedule", "create", "--name", "nightly", "--connection", "site", "--cron", "0 2 * * *", "--timezone", "Europe/Berlin", env=env)
    assert r.returncode == 0 and "next run" in r.stdout, r.stderr
    listed = json.loads(run("schedule", "list", "--json", env=env).stdout)
    sid = listed[0]["id"]
    assert run("schedule", "pause", sid, env=env).stdout.strip() == "paused"
    assert run("schedule", "resume", sid, env=env).stdout.strip() == "active"

    # tail prints the events of a scan started while it runs (and not what happened before).
    tail = subprocess.Popen([VIGIL, "tail", "--seconds", "25"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(2)
    assert run("schedule", "run-now", sid, env=env).returncode == 0
    out, err = tail.communicate(timeout=60)
    assert tail.returncode == 0, err
    assert "opened" in out and "web." in out

    r = run("scan", "no-such-connection", env=env)
    assert r.returncode == 1 and "no connection named no-such-connection" in r.stderr and "Traceback" not in r.stderr
    r = run("connect", "web", "ftp://nope/", env=env)
    assert r.returncode == 1 and "body.settings.url" in r.stderr and "correlation id" in r.stderr
    r = run("findings", "show", "00000000-0000-4000-8000-000000000000", env=env)
    assert r.returncode == 1 and "[not_found]" in r.stderr
    bad = dict(env, VIGIL_TOKEN="vgl_not-a-real-key")
    r = run("findings", "list", env=bad)
    assert r.returncode == 2 and "[invalid_token]" in r.stderr and "correlation id" in r.stderr
    help_text = run("--help").stdout
    assert help_text == open(os.path.join(ROOT, "Tests", "e2e", "fixtures", "cli-help.txt")).read(), help_text
    r = run("--generate-completion-script", "bash")
    assert r.returncode == 0 and "vigil" in r.stdout and "findings" in r.stdout
