#!/usr/bin/env python3
"""The demo flow over the public REST API: sign up, connect the seeded account, scan with a progress
bar, print the findings by severity. Usage: demo.py GATEWAY AWS_ENDPOINT MANIFEST"""
import json
import sys
import time
import uuid

import requests

SEVERITIES = ["critical", "high", "medium", "low", "info"]


def main():
    gateway, endpoint, manifest_path = sys.argv[1:4]
    manifest = json.load(open(manifest_path))
    api = gateway + "/api/v1"
    email, password = f"demo-{uuid.uuid4().hex[:6]}@vigil.local", "demo password " + uuid.uuid4().hex[:6]
    r = requests.post(api + "/auth/signup", json={"email": email, "password": password, "full_name": "Demo",
                                                  "workspace_name": "Demo workspace"}, timeout=15)
    r.raise_for_status()
    h = {"Authorization": "Bearer " + r.json()["access_token"]}
    print(f"signed up {email} (password: {password})")
    conn = requests.post(api + "/connections/", headers=h, timeout=15, json={
        "name": "demo account", "provider": "aws",
        "credentials": {"access_key_id": manifest["access_key_id"], "secret_access_key": manifest["secret_access_key"]},
        "settings": {"regions": manifest["regions"], "endpoint_url": endpoint}})
    conn.raise_for_status()
    conn = conn.json()
    test = requests.post(f"{api}/connections/{conn['id']}/test", headers=h, timeout=30).json()
    print(f"connected AWS account {test.get('account_id')} ({test['message']})")
    scan = requests.post(api + "/scans/trigger", headers=h, json={"connection_id": conn["id"]}, timeout=15)
    scan.raise_for_status()
    scan_id = scan.json()["id"]
    started = time.time()
    while time.time() - started < 300:
        p = requests.get(f"{api}/scans/{scan_id}/progress", headers=h, timeout=15).json()
        bar = "#" * (p["percent_complete"] // 4)
        print(f"\rscan {scan_id[:8]} [{bar:25}] {p['percent_complete']:3d}% {p['phase']:11} "
              f"{p['parts_done']}/{p['parts_total']} parts", end="", flush=True)
        if p["status"] in ("completed", "failed", "canceled"):
            break
        time.sleep(0.2)
    print()
    scan = requests.get(f"{api}/scans/{scan_id}", headers=h, timeout=15).json()
    print(f"scan {scan['status']} in {time.time() - started:.1f}s: {scan['resources_scanned']} resources, "
          f"{scan['checks_evaluated']} checks, {scan['api_calls']} AWS API calls"
          + (f" — {scan['error']}" if scan.get("error") else ""))
    fails, cursor = [], None
    while True:
        q = f"status=FAIL&limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = requests.get(f"{api}/scans/{scan_id}/results?{q}", headers=h, timeout=15).json()
        fails += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    print(f"\nfindings by severity (estimated monthly savings ${scan['estimated_monthly_savings']:.2f}):")
    for sev in SEVERITIES:
        items = [f for f in fails if f["severity"] == sev]
        print(f"\n{sev.upper():8} {len(items)}")
        for f in sorted(items, key=lambda f: (f["rule_id"], f["resource_name"]))[:12]:
            saving = f"  (${f['estimated_monthly_savings']:.2f}/month)" if f.get("estimated_monthly_savings") else ""
            print(f"  - {f['title']}: {f['resource_name']} [{f['region']}]{saving}")
        if len(items) > 12:
            print(f"  … and {len(items) - 12} more")
    deadline = time.time() + 30
    summary = {}
    while time.time() < deadline:
        summary = requests.get(f"{api}/findings/summary", headers=h, timeout=15).json()
        if summary.get("open", 0) >= len(fails):
            break
        time.sleep(0.5)
    score = requests.get(f"{api}/compliance/score", headers=h, timeout=15).json()
    print(f"\nfindings service: {summary.get('open', 0)} open findings; compliance "
          + ", ".join(f"{f['name']} {f['score']}%" for f in score.get("frameworks", [])))
    fix(api, h, conn, manifest)
    print(f"\nAll results: curl -H 'Authorization: Bearer …' '{api}/scans/{scan_id}/results?status=FAIL'")


def fix(api, h, conn, manifest):
    """A fix end to end: write credentials, a policy that approves up to critical, the plan, the
    change, its verification, and the finding resolved."""
    r = requests.post(f"{api}/connections/{conn['id']}/remediation-credentials", headers=h, timeout=30,
                      json={"access_key_id": manifest["access_key_id"], "secret_access_key": manifest["secret_access_key"]})
    r.raise_for_status()
    requests.patch(f"{api}/tenants/current/remediation-policy", headers=h, timeout=15,
                   json={"mode": "auto", "auto_max_severity": "critical"}).raise_for_status()
    items = requests.get(f"{api}/findings/?auto_fix_only=true&status=open&sort_by=severity&limit=20", headers=h, timeout=15).json()["items"]
    preferred = [f for f in items if f["rule_code"] == "aws.s3.bucket_acl_public_read"] or items
    if not preferred:
        print("\nno open finding with an automatic fix (fixed in an earlier demo run?)")
        return
    f = preferred[0]
    a = requests.post(f"{api}/remediations/request", headers=h, timeout=60, json={"finding_id": f["id"]}).json()
    print(f"\nfix for '{f['title']}' on {f['resource_name']}: {a['plan']['action']['title']}")
    for c in a["plan"]["calls"]:
        print(f"  plan: {c['service']} {c['operation']}  (needs {', '.join(a['plan']['action']['permissions'][-2:])})")
    deadline = time.time() + 60
    while time.time() < deadline:
        a = requests.get(f"{api}/remediations/{a['id']}", headers=h, timeout=15).json()
        if a["status"] in ("applied", "failed"):
            break
        time.sleep(0.5)
    print(f"  {a['status']}: rule {a['verification']['rule_code'] if a.get('verification') else ''} now "
          f"{(a.get('verification') or {}).get('status', '?')} on the re-collected resource")
    time.sleep(1.5)
    print(f"  finding is {requests.get(api + '/findings/' + f['id'], headers=h, timeout=15).json()['status']}; "
          f"undo with POST /api/v1/remediations/{a['id']}/rollback")


if __name__ == "__main__":
    main()
