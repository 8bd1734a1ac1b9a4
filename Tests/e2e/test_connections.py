"""Connections: sealed credentials, masking, validation, STS test against moto, isolation, audit."""
import json
import subprocess
import time
import uuid

from conftest import Client, assert_envelope

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_connection_lifecycle_against_moto(stack, signup, moto):
    owner, ob, _ = signup("conn")
    body = {"name": "prod", "provider": "aws", "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
            "settings": {"regions": ["eu-west-1", "us-east-1", "us-east-1"], "endpoint_url": moto}}
    r = owner.post("/connections/", body)
    assert r.status_code == 201, r.text
    conn = r.json()
    assert conn["status"] == "pending" and conn["settings"]["regions"] == ["eu-west-1", "us-east-1"]
    assert conn["credentials"] == {"access_key_id": "AKIA…MPLE", "secret_access_key": "****"}
    for text in (r.text, owner.get("/connections/").text, owner.get(f"/connections/{conn['id']}").text):
        assert SECRET not in text and KEY_ID not in text

    t = owner.post(f"/connections/{conn['id']}/test")
    assert t.status_code == 200, t.text
    assert t.json()["ok"] is True and t.json()["account_id"] == "123456789012" and t.json()["arn"].startswith("arn:aws:")
    assert owner.get(f"/connections/{conn['id']}").json()["status"] == "active"

    # Re-key and rename; the secret never comes back.
    r = owner.patch(f"/connections/{conn['id']}", {"name": "prod-eu", "credentials": {"access_key_id": "ASIAIOSFODNN7EXAMPLE",
                                                                                          "secret_access_key": SECRET, "session_token": "tok"}})
    assert r.status_code == 200 and r.json()["name"] == "prod-eu" and r.json()["credentials"]["session_token"] == "****"

    # Nothing in PostgreSQL holds the secret in plain text.
    dump = subprocess.run(["pg_dump", "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "postgres", "-d", "vigil", "--data-only"],
                          capture_output=True, text=True, check=True).stdout
    assert SECRET not in dump and SECRET.replace("/", "\\\\/") not in dump
    for name in stack.procs:
        assert SECRET not in stack.log(name)

    # Audit records for connection changes.
    deadline = time.time() + 10
    while time.time() < deadline:
        actions = {a["action"] for a in owner.get("/webhooks/audit-logs?resource_type=connection").json()["items"]}
        if {"connection.created", "connection.updated"} <= actions:
            break
        time.sleep(0.2)
    assert {"connection.created", "connection.updated"} <= actions

    assert owner.delete(f"/connections/{conn['id']}").status_code == 204
    assert_envelope(owner.get(f"/connections/{conn['id']}"), 404)


def test_connection_validation_isolation_and_roles(stack, signup, moto):
    owner, ob, _ = signup("connval")
    other, _, _ = signup("connother")
    good = {"name": "x", "provider": "aws", "credentials": {"access_key_id": KEY_ID, "secret_access_key": SECRET},
            "settings": {"endpoint_url": moto}}
    bad_cases = [
        ({**good, "provider": "gcp"}, "body.provider"),
        ({**good, "credentials": {"access_key_id": "nope", "secret_access_key": SECRET}}, "body.credentials.access_key_id"),
        ({**good, "credentials": {"access_key_id": KEY_ID, "secret_access_key": "short"}}, "body.credentials.secret_access_key"),
        ({**good, "credentials": {"role_arn": "arn:aws:iam::12:role/x"}}, "body.credentials.role_arn"),
        ({**good, "settings": {"regions": ["mars-1"]}}, "body.settings.regions"),
        ({**good, "settings": {"endpoint_url": "http://169.254.169.254/"}}, "body.settings.endpoint_url"),
        ({**good, "name": ""}, "body.name"),
    ]
    for body, path in bad_cases:
        b = assert_envelope(owner.post("/connections/", body), 422)
        assert path in {i["path"] for i in b["issues"]}, (path, b)
    conn = owner.post("/connections/", good).json()
    for client in (other,):
        assert_envelope(client.get(f"/connections/{conn['id']}"), 404)
        assert_envelope(client.post(f"/connections/{conn['id']}/test"), 404)
        assert_envelope(client.patch(f"/connections/{conn['id']}", {"name": "stolen"}), 404)
        assert_envelope(client.delete(f"/connections/{conn['id']}"), 404)
        assert conn["id"] not in client.get("/connections/").text
    ro = owner.post("/api-keys/", {"name": "ro", "scopes": ["read"], "role": "viewer"}).json()["key"]
    viewer = Client(stack.url, api_key=ro)
    assert viewer.get(f"/connections/{conn['id']}").status_code == 200
    assert_envelope(viewer.post("/connections/", good), 403)


def test_generate_ssh_key_and_instructions(stack, signup, tmp_path):
    import os
    import shutil
    owner, _, _ = signup("sshkey")
    r = owner.post("/connections/linux/generate-key")
    assert r.status_code == 200, r.text
    k = r.json()
    assert k["algorithm"] == "rsa-4096" and k["public_key"].startswith("ssh-rsa ") and "BEGIN RSA PRIVATE KEY" in k["private_key"]
    if shutil.which("ssh-keygen"):
        pub, priv = tmp_path / "id.pub", tmp_path / "id"
        pub.write_text(k["public_key"] + "\n")
        priv.write_text(k["private_key"])
        os.chmod(priv, 0o600)
        listing = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True, check=True).stdout
        assert listing.startswith("4096 ") and k["fingerprint"] in listing
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(priv)], capture_output=True, text=True, check=True).stdout.split()
        assert derived[:2] == k["public_key"].split()[:2], "private key matches the public key"
    assert k["private_key"] not in stack.log("scan-orchestrator")
    for path in ["linux/install-instructions", "windows/setup-instructions", "azure/setup-instructions", "gcp/setup-instructions"]:
        r = owner.get(f"/connections/{path}")
        assert r.status_code == 200 and r.json()["commands"], path
    # No Windows connector exists: the route says so instead of giving commands for a missing installer.
    win = owner.get("/connections/windows/install-instructions").json()
    assert win["commands"] == [] and "Linux" in " ".join(win["steps"])
    linux = owner.get("/connections/linux/install-instructions").json()
    assert "{ENROLLMENT_TOKEN}" in linux["commands"][0] and linux["variables"] == ["ENROLLMENT_TOKEN", "CONNECTOR_NAME"]
