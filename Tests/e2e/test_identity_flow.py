"""The whole identity flow over HTTP, with emails read from the bus."""
import time

from conftest import Client, assert_envelope, email_to, unique_email


def test_signup_verify_login_refresh_and_reuse_detection(stack, anon):
    email = unique_email("flow")
    r = anon.post("/auth/signup", {"email": email, "password": "a very good password", "full_name": "Flo",
                                   "workspace_name": "Flow Co"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    assert body["user"]["email"] == email and body["user"]["email_verified"] is False
    assert body["workspace"]["slug"].startswith("flow-co")
    assert "password" not in r.text and "password_hash" not in r.text
    me = Client(stack.url, token=body["access_token"])

    # Same email again: 409, never a second account.
    assert_envelope(anon.post("/auth/signup", {"email": email.upper(), "password": "another good one", "full_name": "X",
                                              "workspace_name": "Y"}), 409, "email_taken")

    # Verify email with the token from the email the notifier was asked to send.
    mail = email_to(stack, email, "verify_email")
    token = mail["values"]["token"]
    assert token in mail["text"]
    r = anon.post(f"/auth/verify-email/{token}")
    assert r.status_code == 200, r.text
    assert me.get("/auth/me").json()["user"]["email_verified"] is True
    assert_envelope(anon.post(f"/auth/verify-email/{token}"), 400, "invalid_token")  # single use

    # Login.
    assert_envelope(anon.post("/auth/login", {"email": email, "password": "wrong password!"}), 401, "invalid_credentials")
    r = anon.post("/auth/login", {"email": email, "password": "a very good password"})
    assert r.status_code == 200, r.text
    first = r.json()["refresh_token"]

    # Refresh rotates.
    r = anon.post("/auth/refresh", {"refresh_token": first})
    assert r.status_code == 200, r.text
    second = r.json()["refresh_token"]
    assert second != first
    assert Client(stack.url, token=r.json()["access_token"]).get("/auth/me").status_code == 200

    # Reusing the spent token is refused and revokes the family, including the newer token.
    assert_envelope(anon.post("/auth/refresh", {"refresh_token": first}), 401, "invalid_refresh_token")
    assert_envelope(anon.post("/auth/refresh", {"refresh_token": second}), 401, "invalid_refresh_token")
    assert_envelope(anon.post("/auth/refresh", {"refresh_token": "vrt_" + "A" * 43}), 401)


def test_forgot_reset_and_change_password(stack, anon, signup):
    client, body, password = signup("reset")
    email = body["user"]["email"]
    # No account enumeration: unknown and known emails both get 202.
    assert anon.post("/auth/forgot-password", {"email": unique_email("nobody")}).status_code == 202
    r = anon.post("/auth/forgot-password", {"email": email})
    assert r.status_code == 202
    token = email_to(stack, email, "reset_password")["values"]["token"]
    assert_envelope(anon.post("/auth/reset-password", {"token": token, "new_password": "short"}), 422)
    r = anon.post("/auth/reset-password", {"token": token, "new_password": "brand new password 1"})
    assert r.status_code == 200, r.text
    assert_envelope(anon.post("/auth/reset-password", {"token": token, "new_password": "brand new password 2"}), 400, "invalid_token")
    # The refresh token issued before the reset is dead; the old password too.
    assert_envelope(anon.post("/auth/refresh", {"refresh_token": body["refresh_token"]}), 401)
    assert anon.post("/auth/login", {"email": email, "password": password}).status_code == 401
    r = anon.post("/auth/login", {"email": email, "password": "brand new password 1"})
    assert r.status_code == 200
    session = Client(stack.url, token=r.json()["access_token"])

    # Change password needs the current one.
    b = assert_envelope(session.post("/auth/change-password", {"current_password": "nope nope nope",
                                                               "new_password": "third password!!"}), 422)
    assert b["issues"][0]["path"] == "body.current_password"
    assert session.post("/auth/change-password", {"current_password": "brand new password 1",
                                                  "new_password": "third password!!"}).status_code == 200
    assert anon.post("/auth/login", {"email": email, "password": "third password!!"}).status_code == 200


def test_resend_verification_and_profile(stack, anon, signup):
    client, body, _ = signup("resend")
    email = body["user"]["email"]
    assert client.post("/auth/resend-verification", {}).status_code == 200
    mails = [m for s, h, m in stack.bus.received("vigil.jobs.email.send")
             if m["data"]["to"] == email and m["data"]["template"] == "verify_email"]
    deadline = time.time() + 5
    while len(mails) < 2 and time.time() < deadline:
        time.sleep(0.05)
        mails = [m for s, h, m in stack.bus.received("vigil.jobs.email.send")
                 if m["data"]["to"] == email and m["data"]["template"] == "verify_email"]
    assert len(mails) == 2
    assert anon.post("/auth/resend-verification", {"email": unique_email("ghost")}).status_code == 200
    assert_envelope(anon.post("/auth/resend-verification", {}), 422)
    r = client.patch("/users/profile", {"full_name": "  New Name  "})
    assert r.status_code == 200 and r.json()["full_name"] == "New Name"
    assert_envelope(client.patch("/users/profile", {"full_name": ""}), 422)


def test_login_is_throttled_per_account(stack, anon, signup):
    _, body, password = signup("throttle")
    email = body["user"]["email"]
    for _ in range(5):
        assert anon.post("/auth/login", {"email": email, "password": "wrong wrong wrong"}).status_code == 401
    # Even the right password is refused while throttled (limit 5 in this stack).
    assert_envelope(anon.post("/auth/login", {"email": email, "password": password}), 429, "rate_limited")


def test_invitations_for_new_and_existing_users(stack, anon, signup):
    owner, ob, _ = signup("inviter", "Invite Corp")
    # New user.
    new_email = unique_email("newbie")
    r = owner.post("/invitations/", {"email": new_email, "role": "analyst"})
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["status"] == "pending" and inv["role"] == "analyst" and "token" not in inv
    assert_envelope(owner.post("/invitations/", {"email": new_email}), 409, "invitation_pending")
    token = email_to(stack, new_email, "invitation")["values"]["token"]
    v = anon.get(f"/invitations/validate/{token}")
    assert v.status_code == 200
    assert v.json()["needs_password"] is True and v.json()["workspace"]["name"] == "Invite Corp"
    assert_envelope(anon.post(f"/invitations/accept/{token}", {}), 422)
    r = anon.post(f"/invitations/accept/{token}", {"full_name": "New Bie", "password": "newbie password"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "analyst" and r.json()["access_token"]
    assert_envelope(anon.post(f"/invitations/accept/{token}", {"full_name": "x", "password": "newbie password"}), 410)
    assert anon.post("/auth/login", {"email": new_email, "password": "newbie password"}).status_code == 200

    # Existing user (has their own workspace) joins as viewer without a password.
    other, otb, _ = signup("existing")
    r = owner.post("/users/invite", {"email": otb["user"]["email"], "role": "viewer"})
    assert r.status_code == 201, r.text
    token = email_to(stack, otb["user"]["email"], "invitation")["values"]["token"]
    assert anon.get(f"/invitations/validate/{token}").json()["user_exists"] is True
    r = anon.post(f"/invitations/accept/{token}", {})
    assert r.status_code == 200, r.text
    assert r.json().get("access_token") is None
    # They now act in the inviting workspace with x-tenant-slug, as a viewer.
    in_invite = other.as_(slug=ob["workspace"]["slug"])
    me = in_invite.get("/auth/me").json()
    assert me["workspace"]["id"] == ob["workspace"]["id"] and me["role"] == "viewer"
    assert len(me["memberships"]) == 2
    assert_envelope(in_invite.post("/invitations/", {"email": unique_email()}), 403, "forbidden")

    # Resend and revoke.
    r = owner.post("/invitations/", {"email": unique_email("later")})
    inv_id = r.json()["id"]
    assert owner.post(f"/invitations/{inv_id}/resend").status_code == 200
    assert owner.delete(f"/invitations/{inv_id}").status_code == 204
    assert_envelope(owner.post(f"/invitations/{inv_id}/resend"), 409)
    listed = owner.get("/invitations/?limit=10").json()
    statuses = {i["id"]: i["status"] for i in listed["items"]}
    assert statuses[inv_id] == "revoked" and statuses[inv["id"]] == "accepted"
    assert_envelope(anon.get("/invitations/validate/vin_" + "x" * 43), 404)


def test_team_roles_and_owner_protection(stack, anon, signup):
    owner, ob, _ = signup("teamowner", "Team Co")
    members = {}
    for role in ["admin", "analyst"]:
        email = unique_email(role)
        owner.post("/invitations/", {"email": email, "role": role})
        token = email_to(stack, email, "invitation")["values"]["token"]
        r = anon.post(f"/invitations/accept/{token}", {"full_name": role, "password": f"{role} password!"})
        members[role] = (Client(stack.url, token=r.json()["access_token"]), r.json()["membership_id"])
    admin, admin_mid = members["admin"]
    analyst, analyst_mid = members["analyst"]
    team = owner.get("/users/team").json()
    assert team["total"] == 3
    owner_mid = next(m["membership_id"] for m in team["items"] if m["role"] == "owner")

    # Analyst cannot change roles; admin can change the analyst; admin cannot touch the owner.
    assert_envelope(analyst.patch(f"/users/team/{admin_mid}/role", {"role": "viewer"}), 403)
    r = admin.patch(f"/users/team/{analyst_mid}/role", {"role": "viewer"})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert_envelope(admin.patch(f"/users/team/{owner_mid}/role", {"role": "admin"}), 403)
    assert_envelope(admin.delete(f"/users/team/{owner_mid}"), 403)
    assert_envelope(admin.patch(f"/users/team/{analyst_mid}/role", {"role": "owner"}), 403)
    assert_envelope(admin.patch(f"/users/team/{analyst_mid}/role", {"role": "emperor"}), 422)
    # The last owner can neither be demoted nor leave.
    assert_envelope(owner.patch(f"/users/team/{owner_mid}/role", {"role": "admin"}), 409, "last_owner")
    assert_envelope(owner.delete(f"/users/team/{owner_mid}"), 409, "last_owner")
    # With a second owner, the first may step down.
    assert owner.patch(f"/users/team/{admin_mid}/role", {"role": "owner"}).status_code == 200
    assert owner.patch(f"/users/team/{owner_mid}/role", {"role": "admin"}).status_code == 200
    # The demoted analyst (now viewer) can read but not invite; can leave on their own.
    assert analyst.get("/users/team").status_code == 200
    assert_envelope(analyst.post("/invitations/", {"email": unique_email()}), 403)
    assert analyst.delete(f"/users/team/{analyst_mid}").status_code == 204
    assert_envelope(analyst.get("/tenants/current"), 403)  # no workspace left
    # Pagination walks the team with a cursor.
    page1 = owner.get("/users/team?limit=1").json()
    assert len(page1["items"]) == 1 and page1["next_cursor"]
    page2 = owner.get(f"/users/team?limit=1&cursor={page1['next_cursor']}").json()
    assert page2["items"][0]["membership_id"] != page1["items"][0]["membership_id"]
    assert_envelope(owner.get("/users/team?cursor=garbage"), 422)
    assert_envelope(owner.get("/users/team?limit=0"), 422)


def test_tenant_settings_and_remediation_policy(stack, signup):
    owner, ob, _ = signup("settings")
    # /auth/me answers from each identity replica's cached workspace row; a change is seen at once on every replica.
    for _ in range(6):
        assert owner.get("/auth/me").json()["workspace"]["name"] != "Renamed"
    r = owner.patch("/tenants/current", {"name": "Renamed"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    assert [owner.get("/auth/me").json()["workspace"]["name"] for _ in range(6)] == ["Renamed"] * 6
    r = owner.patch("/tenants/current/settings", {"settings": {"scan_interval_hours": 12, "notifyOnCritical": True}})
    assert r.status_code == 200
    assert [owner.get("/auth/me").json()["workspace"]["settings"].get("scan_interval_hours") for _ in range(6)] == [12] * 6
    assert r.json()["settings"] == {"scan_interval_hours": 12, "notifyOnCritical": True}
    r = owner.patch("/tenants/current/settings", {"settings": {"timezone": "UTC"}})
    assert r.json()["settings"]["timezone"] == "UTC" and r.json()["settings"]["scan_interval_hours"] == 12
    assert owner.get("/tenants/current").json()["name"] == "Renamed"
    r = owner.patch("/tenants/current/remediation-policy", {"mode": "auto", "auto_max_severity": "low"})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "auto" and r.json()["auto_max_severity"] == "low"
    b = assert_envelope(owner.patch("/tenants/current/remediation-policy", {"mode": "yolo"}), 422)
    assert b["issues"][0]["path"] == "body.mode"


def test_api_keys_create_use_scope_and_revoke(stack, anon, signup):
    owner, ob, _ = signup("keys")
    r = owner.post("/api-keys/", {"name": "ci"})
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("vgl_") and len(key) == 47 and created["prefix"] == key[:12]
    # Bearer and x-api-key both work; /me tells the key's workspace, scopes and role.
    for c in (Client(stack.url, token=key), Client(stack.url, api_key=key)):
        me = c.get("/me").json()
        assert me["kind"] == "api_key" and me["workspace"]["id"] == ob["workspace"]["id"]
        assert me["scopes"] == ["read", "write"] and me["role"] == "owner"
    listed = owner.get("/api-keys/").json()
    assert listed["items"][0]["prefix"] == created["prefix"]
    assert key not in str(listed) and "key_hash" not in str(listed)
    assert listed["items"][0]["last_used_at"] is not None

    # A read-only key cannot mutate.
    ro = owner.post("/api-keys/", {"name": "ro", "scopes": ["read"]}).json()["key"]
    assert Client(stack.url, api_key=ro).get("/api-keys/").status_code == 200
    assert_envelope(Client(stack.url, api_key=ro).post("/api-keys/", {"name": "x"}), 403)
    assert_envelope(owner.post("/api-keys/", {"name": "bad", "scopes": ["root"]}), 422)
    assert_envelope(owner.post("/api-keys/", {"name": "old", "expires_at": "2001-01-01T00:00:00Z"}), 422)

    # Revoke: 204, then the key is rejected on its next use.
    assert owner.delete(f"/api-keys/{created['id']}").status_code == 204
    assert_envelope(Client(stack.url, api_key=key).get("/me"), 401, "invalid_api_key")
    assert_envelope(owner.delete(f"/api-keys/{created['id']}"), 404)
    assert_envelope(Client(stack.url, api_key="vgl_" + "A" * 43).get("/me"), 401)
    assert_envelope(Client(stack.url, api_key="not-a-key").get("/me"), 401)
    assert_envelope(anon.get("/me"), 401, "unauthorized")


def test_msp_parent_admin_acts_in_child(stack, signup):
    parent, pb, _ = signup("msp", "MSP Parent")
    r = parent.post("/tenants/msp/workspaces", {"name": "Client One"})
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["parent_id"] == pb["workspace"]["id"]
    kids = parent.get("/tenants/msp/workspaces").json()
    assert [k["id"] for k in kids["items"]] == [child["id"]]
    in_child = parent.as_(slug=child["slug"])
    cur = in_child.get("/tenants/current").json()
    assert cur["id"] == child["id"]
    me = in_child.get("/auth/me").json()
    assert me["acting_via_parent"] is None or me["acting_via_parent"] == pb["workspace"]["id"]
    # An API key of the parent can act in the child too.
    key = parent.post("/api-keys/", {"name": "msp"}).json()["key"]
    assert Client(stack.url, api_key=key, slug=child["slug"]).get("/tenants/current").json()["id"] == child["id"]
    # Another tenant cannot select the child.
    stranger, sb, _ = signup("stranger")
    assert_envelope(stranger.as_(slug=child["slug"]).get("/tenants/current"), 404)
    assert_envelope(stranger.as_(slug=pb["workspace"]["slug"]).get("/tenants/current"), 404)
