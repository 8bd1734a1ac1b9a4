"""Upgrade: the scan orchestrator's schema as the previous release left it (scans migration 9; the release before
this one), with data in it — a repository, its secrets scan and findings, a schedule — then the current
migrations applied by a restart: the migration history grows, every old row is still served, and the new
features work on the old data (a fix of a finding found before the upgrade)."""
import os
import subprocess
import time
import uuid

from conftest import Client, Stack, psql


def test_previous_schema_with_data_migrates_and_is_served(tmp_path):
    s = Stack(limited_gateway=False, record_events=False, extra_env={"VIGIL_SCHEMA_VERSION_MAX": "scans=9"})
    s.start()
    try:
        assert psql(s, "SELECT max(version) FROM scans.schema_migrations") == "9"
        r = Client(s.url).post("/auth/signup", {"email": f"up-{uuid.uuid4().hex[:8]}@example.com", "password": "correct horse 12",
                                                "full_name": "Up Grade", "workspace_name": "upgrade"})
        owner = Client(s.url, token=r.json()["access_token"])
        repo = str(tmp_path / "repo")
        os.makedirs(repo)
        env = dict(os.environ, GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@a", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@a")
        with open(os.path.join(repo, "settings.py"), "w") as f:
            f.write('STRIPE_KEY = "sk_live_' + uuid.uuid4().hex[:24] + '"\n')
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
            subprocess.run(["git", "-C", repo, *args], check=True, env=env)
        rid = owner.post("/repositories", {"clone_url": f"file://{repo}"}).json()["id"]
        batch = owner.post(f"/repositories/{rid}/scans", {"scan_type": "secrets_scan"}).json()["id"]
        deadline = time.time() + 60
        while time.time() < deadline and not owner.get(f"/repositories/{rid}/scans/{batch}").json()["findings_ingested"]:
            time.sleep(0.3)
        finding = owner.get(f"/repositories/{rid}/findings").json()["items"][0]
        schedule = owner.post("/schedules/", {"name": "nightly", "connection_id": rid, "cron": "0 9 * * *"}).json()["id"]

        s.restart("scan-orchestrator", VIGIL_SCHEMA_VERSION_MAX="")
        assert psql(s, "SELECT max(version) FROM scans.schema_migrations") == "10"
        assert owner.get(f"/repositories/{rid}").json()["id"] == rid
        old = owner.get(f"/repositories/{rid}/scans/{batch}")
        assert old.status_code == 200 and old.json()["status"] == "completed"
        progress = owner.get(f"/repositories/{rid}/scans/{batch}/progress").json()
        assert progress["status"] == "completed" and progress["repositories"][0]["counters"]["commits"] == 1
        assert owner.get(f"/repositories/{rid}/findings/{finding['id']}").json()["file"] == "settings.py"
        assert owner.get(f"/schedules/{schedule}").json()["connection_id"] == rid
        fix = owner.post(f"/repositories/{rid}/fixes", {"title": "t", "instructions": "i", "finding_ids": [finding["id"]]})
        assert fix.status_code == 201, fix.text
        deadline = time.time() + 60
        while time.time() < deadline and owner.get(f"/repositories/{rid}/fixes/{fix.json()['id']}").json()["status"] != "completed":
            time.sleep(0.3)
        assert owner.get(f"/repositories/{rid}/fixes/{fix.json()['id']}").json()["outcomes"][0]["outcome"] == "fixed"
    finally:
        s.stop()
