"""Scan schedules: the API, the scheduler's exactly-once runs with two replicas, catch-up after
downtime, the quota skip and run-now."""
import datetime
import time
import uuid

from conftest import assert_envelope, psql

ONE_SERVICE = {"regions": ["us-east-1"], "services": ["s3"]}


def connect(client, moto):
    r = client.post("/connections/", {"name": "scheduled", "provider": "aws",
                                      "credentials": {"access_key_id": "AKIA" + "SCHEDULE0000TEST", "secret_access_key": "s" * 40},
                                      "settings": {"regions": ["us-east-1"], "endpoint_url": moto}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def parse(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def runs_of(client, sid):
    r = client.get(f"/schedules/{sid}/runs?limit=50")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def wait_runs(client, sid, count, timeout=20, settled=lambda run: run["outcome"] != "pending"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        items = runs_of(client, sid)
        if len(items) >= count and all(settled(x) for x in items):
            return items
        time.sleep(0.2)
    raise AssertionError(f"schedule {sid} did not get {count} settled runs: {runs_of(client, sid)}")


def make_due(stack, sid, ago="1 second"):
    psql(stack, f"UPDATE scans.schedules SET next_run_at = now() - interval '{ago}' WHERE id = '{sid}'")


def test_schedule_api_validates_shows_next_run_and_isolates_tenants(stack, signup, moto):
    owner, _, _ = signup("sched-api")
    other, _, _ = signup("sched-other")
    cid = connect(owner, moto)
    r = owner.post("/schedules/", {"name": "nightly", "connection_id": cid, "cron": "0 9 * * *", "timezone": "Asia/Tokyo", **ONE_SERVICE})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["status"] == "active" and s["enabled"] is True and s["cron"] == "0 9 * * *" and s.get("interval_minutes") is None
    nxt = parse(s["next_run_at"])
    # 09:00 in Tokyo is 00:00 UTC, within the next 24 hours.
    assert (nxt.hour, nxt.minute) == (0, 0) and now() < nxt <= now() + datetime.timedelta(days=1)
    sid = s["id"]

    for body, path in (({"name": "x", "connection_id": cid}, "body.cron"),
                       ({"name": "x", "connection_id": cid, "cron": "61 * * * *"}, "body.cron"),
                       ({"name": "x", "connection_id": cid, "cron": "* * * *"}, "body.cron"),
                       ({"name": "x", "connection_id": cid, "cron": "0 0 30 2 *"}, "body.cron"),
                       ({"name": "x", "connection_id": cid, "cron": "0 * * * *", "interval_minutes": 60}, "body.cron"),
                       ({"name": "x", "connection_id": cid, "interval_minutes": 1}, "body.interval_minutes"),
                       ({"name": "x", "connection_id": cid, "cron": "0 * * * *", "timezone": "Mars/Olympus_Mons"}, "body.timezone"),
                       ({"name": "x", "connection_id": "nope", "cron": "0 * * * *"}, "body.connection_id"),
                       ({"connection_id": cid, "cron": "0 * * * *"}, "body.name"),
                       ({"name": "x", "connection_id": cid, "cron": "0 * * * *", "services": ["nosuch"]}, "body.services")):
        r = owner.post("/schedules/", body)
        assert_envelope(r, 422)
        assert path in [i["path"] for i in r.json()["issues"]], (body, r.json())
    assert_envelope(owner.post("/schedules/", {"name": "x", "connection_id": str(uuid.uuid4()), "cron": "0 * * * *"}), 404)
    assert_envelope(owner.post("/schedules/", {"name": "x", "connection_id": cid, "cron": 5}), 422)

    # Update keeps what is left out; an interval replaces the cron.
    r = owner.call("PUT", f"/schedules/{sid}", {"interval_minutes": 90})
    assert r.status_code == 200, r.text
    u = r.json()
    assert u["interval_minutes"] == 90 and u.get("cron") is None and u["timezone"] == "Asia/Tokyo" and u["name"] == "nightly"
    assert u["services"] == ["s3"] and now() + datetime.timedelta(minutes=85) < parse(u["next_run_at"]) <= now() + datetime.timedelta(minutes=91)
    assert_envelope(owner.call("PUT", f"/schedules/{sid}", {"cron": "bad"}), 422)

    # Pause still shows when it would run; resume runs from now.
    p = owner.post(f"/schedules/{sid}/pause").json()
    assert p["status"] == "paused" and p["enabled"] is False and p["next_run_at"]
    assert owner.post(f"/schedules/{sid}/resume").json()["status"] == "active"

    listed = owner.get(f"/schedules/?connection_id={cid}").json()
    assert [x["id"] for x in listed["items"]] == [sid] and listed["total"] == 1
    assert_envelope(owner.get("/schedules/?connection_id=nope"), 422)

    # Another workspace sees none of it.
    for method, path in (("GET", f"/schedules/{sid}"), ("PUT", f"/schedules/{sid}"), ("DELETE", f"/schedules/{sid}"),
                         ("POST", f"/schedules/{sid}/pause"), ("POST", f"/schedules/{sid}/resume"),
                         ("POST", f"/schedules/{sid}/run-now"), ("GET", f"/schedules/{sid}/runs")):
        assert_envelope(other.call(method, path, {} if method == "PUT" else None), 404)
    assert other.get("/schedules/").json()["items"] == []
    assert_envelope(other.post("/schedules/", {"name": "x", "connection_id": cid, "cron": "0 * * * *"}), 404)
    assert_envelope(owner.get("/schedules/not-a-uuid"), 404)

    assert owner.delete(f"/schedules/{sid}").status_code == 200
    assert_envelope(owner.get(f"/schedules/{sid}"), 404)


def test_viewers_read_schedules_and_analysts_manage_them(stack, signup, moto):
    from conftest import join_workspace
    owner, _, _ = signup("sched-roles")
    cid = connect(owner, moto)
    sid = owner.post("/schedules/", {"name": "r", "connection_id": cid, "interval_minutes": 60}).json()["id"]
    viewer = join_workspace(stack, owner, "viewer")
    assert viewer.get(f"/schedules/{sid}").status_code == 200
    assert_envelope(viewer.post(f"/schedules/{sid}/pause"), 403)
    assert_envelope(viewer.post("/schedules/", {"name": "v", "connection_id": cid, "interval_minutes": 60}), 403)
    analyst = join_workspace(stack, owner, "analyst")
    assert analyst.post(f"/schedules/{sid}/pause").status_code == 200


def test_due_runs_start_exactly_once_with_two_scheduler_replicas(stack, signup, moto):
    owner, _, _ = signup("sched-once")
    cid = connect(owner, moto)
    sids = [owner.post("/schedules/", {"name": f"s{i}", "connection_id": cid, "interval_minutes": 60, **ONE_SERVICE}).json()["id"]
            for i in range(6)]
    stack.spawn("scan-orchestrator", name="scan-orchestrator-2", VIGIL_SCAN_ROLES="api")
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            if len([r for r in stack.bus.gather("$SRV.PING", 0.3) if r.get("name") == "scan-orchestrator"]) == 2:
                break
        else:
            raise AssertionError("second scan-orchestrator did not start")
        for _ in range(3):
            ids = ",".join(f"'{s}'" for s in sids)
            psql(stack, f"UPDATE scans.schedules SET next_run_at = now() - interval '1 second' WHERE id IN ({ids})")
            time.sleep(3)  # several ticks of both replicas
        for sid in sids:
            runs = wait_runs(owner, sid, 3)
            assert len(runs) == 3, runs
            assert all(r["outcome"] == "started" and r["scan_id"] == r["id"] for r in runs), runs
            assert len({r["planned_at"] for r in runs}) == 3
        scans = owner.get(f"/scans/?connection_id={cid}&limit=100").json()["items"]
        assert len(scans) == 18 and all(s["requested_by"].startswith("schedule:") for s in scans)
    finally:
        p = stack.procs.pop("scan-orchestrator-2")
        p.terminate()
        p.wait(15)


def test_missed_runs_become_one_catch_up_run_in_phase(stack, signup, moto):
    owner, _, _ = signup("sched-catchup")
    cid = connect(owner, moto)
    sid = owner.post("/schedules/", {"name": "hourly", "connection_id": cid, "interval_minutes": 60, **ONE_SERVICE}).json()["id"]
    # Down for a little over three hours: three runs were missed.
    make_due(stack, sid, "3 hours 10 minutes")
    runs = wait_runs(owner, sid, 1)
    time.sleep(2.5)
    runs = runs_of(owner, sid)
    assert len(runs) == 1 and runs[0]["trigger"] == "catch_up" and runs[0]["outcome"] == "started", runs
    planned = parse(runs[0]["planned_at"])
    assert now() - planned > datetime.timedelta(hours=3)
    nxt = parse(owner.get(f"/schedules/{sid}").json()["next_run_at"])
    # The next run keeps the original phase: four intervals after the missed planned time.
    assert nxt == planned + datetime.timedelta(hours=4) and now() < nxt < now() + datetime.timedelta(hours=1)
    s = owner.get(f"/schedules/{sid}").json()
    assert s["last_outcome"] == "started" and s["last_run_at"]
    assert stack.bus.wait_for(lambda e: e["data"].get("schedule_id") == sid and e["data"]["trigger"] == "catch_up",
                              "vigil.events.schedule.run_started")


def test_run_now_starts_a_scan_without_moving_the_schedule_and_quota_skips_are_recorded(stack, signup, moto):
    owner, _, _ = signup("sched-now")
    cid = connect(owner, moto)
    s = owner.post("/schedules/", {"name": "weekly", "connection_id": cid, "cron": "0 3 * * 1", **ONE_SERVICE}).json()
    r = owner.post(f"/schedules/{s['id']}/run-now")
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["trigger"] == "manual" and run["outcome"] == "started" and run["scan_id"] == run["id"] and run.get("started_at")
    assert owner.get(f"/scans/{run['scan_id']}").json()["requested_by"] == f"schedule:{s['id']}"
    assert owner.get(f"/schedules/{s['id']}").json()["next_run_at"] == s["next_run_at"]

    # The plan's scans are used up: the run is recorded as skipped, with the reason, and no scan starts.
    t = owner.get("/auth/me").json()["workspace"]["id"]
    owner.get("/billing/subscription")
    psql(stack, f"""INSERT INTO billing.usage (tenant_id, period_start, quota, used)
                    SELECT tenant_id, current_period_start, 'scans', 1000000 FROM billing.subscriptions WHERE tenant_id = '{t}'
                    ON CONFLICT (tenant_id, period_start, quota) DO UPDATE SET used = 1000000""")
    scans_before = len(owner.get(f"/scans/?connection_id={cid}").json()["items"])
    make_due(stack, s["id"])
    runs = wait_runs(owner, s["id"], 2)
    skipped = [x for x in runs if x["outcome"] == "skipped_quota"]
    assert len(skipped) == 1 and "scans" in skipped[0]["reason"] and skipped[0].get("scan_id") is None, runs
    assert len(owner.get(f"/scans/?connection_id={cid}").json()["items"]) == scans_before
    assert owner.get(f"/schedules/{s['id']}").json()["last_outcome"] == "skipped_quota"
    assert stack.bus.wait_for(lambda e: e["data"].get("schedule_id") == s["id"] and e["data"]["outcome"] == "skipped_quota",
                              "vigil.events.schedule.run_skipped")
    psql(stack, f"DELETE FROM billing.usage WHERE tenant_id = '{t}' AND quota = 'scans'")
