"""vigil-mcp driven by the reference MCP client (PyPI `mcp`) over stdio: tools listed, a scan started
and followed until its findings are final, findings listed and read, a remediation guide, triage (audited),
resources (open findings, reports), scan policy, confirmation required for every change, errors as
tool errors, and a viewer key that cannot change anything (request_remediation included)."""
import asyncio
import json
import os

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import BIN
from test_web import sites, web_connection  # noqa: F401


async def session_run(env, steps):
    params = StdioServerParameters(command=os.path.join(BIN, "vigil-mcp"), args=[], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            return await steps(s)


def call(s, name, **args):
    async def go():
        r = await s.call_tool(name, args)
        return r.is_error, r.content[0].text
    return go()


def test_mcp_tools_over_the_rest_api(stack, signup, sites):  # noqa: F811
    owner, _, _ = signup("mcp")
    web_connection(owner, sites["planted"], sites["ca_text"])
    key = owner.post("/api-keys/", {"name": "assistant", "role": "analyst"}).json()["key"]
    env = {"VIGIL_URL": stack.url, "VIGIL_TOKEN": key, "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}

    async def steps(s):
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert {"list_connections", "run_scan", "get_scan", "list_findings", "get_finding", "explain_finding", "request_remediation",
                "compliance_score", "generate_report", "get_scan_policy", "set_scan_policy"} <= set(tools)
        assert tools["list_findings"].annotations.read_only_hint is True and tools["run_scan"].annotations.read_only_hint is False
        assert "confirm" in tools["run_scan"].input_schema["required"]
        err, text = await call(s, "list_connections")
        conns = json.loads(text)
        assert not err and conns[0]["provider"] == "web"
        err, text = await call(s, "run_scan", connection=conns[0]["name"])
        assert err and "confirm: true" in text
        err, text = await call(s, "run_scan", connection=conns[0]["name"], confirm=True)
        assert not err, text
        scan_id = json.loads(text)["scan_id"]
        for _ in range(600):
            err, text = await call(s, "get_scan", scan_id=scan_id)
            status = json.loads(text)
            if status["findings_ingested"]:
                break
            await asyncio.sleep(0.2)
        assert status["status"] == "completed" and status["findings_count"]["critical"] >= 3
        err, text = await call(s, "list_findings", min_severity="critical", limit=100)
        listed = json.loads(text)
        assert not err and listed["total"] >= 3 and all(f["severity"] == "critical" for f in listed["findings"])
        git = next(f for f in listed["findings"] if f["check_id"] == "web.exposure.git")
        err, text = await call(s, "get_finding", finding_id=git["id"])
        assert not err and "/.git/" in text and "remediation" in json.loads(text)
        err, text = await call(s, "explain_finding", finding_id=git["id"])
        assert not err and json.loads(text)["console_steps"]
        err, text = await call(s, "compliance_score")
        assert not err and "frameworks" in json.loads(text)
        err, text = await call(s, "request_remediation", finding_id=git["id"], confirm=True)
        assert err and "correlation id" in text  # web findings have no automatic fix: the API says so
        err, text = await call(s, "get_scan_policy")
        assert not err and "cpu_percent" in text
        err, text = await call(s, "set_scan_policy", **{"global": {"cpu_percent": 4}})
        assert err and "confirm" in text
        err, text = await call(s, "set_scan_policy", confirm=True, **{"global": {"cpu_percent": 4}})
        assert err and "forbidden" in text  # scan policy is an admin's; this key is an analyst's
        err, text = await call(s, "generate_report", type="findings_export", format="json", confirm=True)
        assert not err, text
        report_uri = json.loads(text)["resource"]
        listed_resources = {str(r.uri) for r in (await s.list_resources()).resources}
        assert "vigil://findings" in listed_resources and report_uri in listed_resources
        body = (await s.read_resource(report_uri)).contents[0].text
        assert "web.exposure.git" in body
        open_findings = json.loads((await s.read_resource("vigil://findings")).contents[0].text)
        assert any(f["check_id"] == "web.exposure.git" for f in open_findings)
        err, text = await call(s, "triage_finding", finding_id=git["id"], action="accept_risk", reason="mirror of a public repo", confirm=True)
        assert not err and json.loads(text)["status"] == "accepted_risk", text
        # Errors come back as tool errors with the API's words, not as a crash of the server.
        err, text = await call(s, "get_finding", finding_id="00000000-0000-4000-8000-000000000000")
        assert err and "not_found" in text and "correlation id" in text
        err, text = await call(s, "list_findings", min_severity="severe")
        assert err and "min_severity" in text
        err, text = await call(s, "run_scan", connection="no-such", confirm=True)
        assert err and "no connection named" in text
        return git["id"]

    finding = asyncio.run(session_run(env, steps))
    assert owner.get(f"/findings/{finding}").json()["status"] == "accepted_risk"

    # A viewer's key: reads work, changes are refused by the API's roles.
    viewer_key = owner.post("/api-keys/", {"name": "reader", "role": "viewer"}).json()["key"]

    async def viewer(s):
        err, text = await call(s, "list_findings")
        assert not err
        err, text = await call(s, "triage_finding", finding_id=finding, action="reopen", reason="no", confirm=True)
        assert err and "forbidden" in text
        err, text = await call(s, "run_scan", connection="site", confirm=True)
        assert err and "forbidden" in text
        err, text = await call(s, "request_remediation", finding_id=finding, confirm=True)
        assert err and "forbidden" in text

    asyncio.run(session_run(dict(env, VIGIL_TOKEN=viewer_key), viewer))


def test_mcp_streamable_http_acts_with_each_callers_key(stack, signup, sites):  # noqa: F811
    """`vigil-mcp --http`: the reference client's streamable HTTP transport, one session per key; the key that
    opened a session is the only one that can use it; a viewer's session cannot change anything."""
    import subprocess
    import httpx2
    import requests
    from mcp.client.streamable_http import streamable_http_client
    from conftest import free_port, wait_port

    owner, _, _ = signup("mcphttp")
    web_connection(owner, sites["planted"], sites["ca_text"])
    analyst = owner.post("/api-keys/", {"name": "assistant", "role": "analyst"}).json()["key"]
    viewer_key = owner.post("/api-keys/", {"name": "reader", "role": "viewer"}).json()["key"]
    port = free_port()
    env = {"VIGIL_URL": stack.url, "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    proc = subprocess.Popen([os.path.join(BIN, "vigil-mcp"), "--http", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_port(port)

        async def over_http(key, steps):
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                async with streamable_http_client(url, http_client=client) as (read, write):
                    async with ClientSession(read, write) as s:
                        await s.initialize()
                        return await steps(s)

        async def analyst_steps(s):
            tools = {t.name for t in (await s.list_tools()).tools}
            assert {"run_scan", "list_findings", "request_remediation"} <= tools
            err, text = await call(s, "list_connections")
            assert not err and json.loads(text)[0]["provider"] == "web"
            err, text = await call(s, "run_scan", connection=json.loads(text)[0]["name"], confirm=True)
            assert not err, text
            scan_id = json.loads(text)["scan_id"]
            for _ in range(600):
                err, text = await call(s, "get_scan", scan_id=scan_id)
                if json.loads(text)["findings_ingested"]:
                    break
                await asyncio.sleep(0.2)
            err, text = await call(s, "list_findings", min_severity="critical")
            assert not err and json.loads(text)["total"] >= 3
            return scan_id

        scan_id = asyncio.run(over_http(analyst, analyst_steps))
        assert owner.get(f"/scans/{scan_id}").json()["status"] == "completed"

        async def viewer_steps(s):
            err, text = await call(s, "list_findings")
            assert not err
            err, text = await call(s, "run_scan", connection="site", confirm=True)
            assert err and "forbidden" in text
        asyncio.run(over_http(viewer_key, viewer_steps))

        # Without a key: 401 with a challenge. A session is bound to its key: another key gets the 404 of an
        # unknown session; a request that is not initialize opens nothing.
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        r = requests.post(url, json=init, headers=accept, timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        r = requests.post(url, json=init, headers=dict(accept, Authorization=f"Bearer {analyst}"), timeout=10, stream=True)
        assert r.status_code == 200, r.text
        session = r.headers["Mcp-Session-Id"]
        r.close()
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        r = requests.post(url, json=listing, headers=dict(accept, Authorization=f"Bearer {viewer_key}", **{"Mcp-Session-Id": session}), timeout=10)
        assert r.status_code == 404
        r = requests.post(url, json=listing, headers=dict(accept, **{"Mcp-Session-Id": session}), timeout=10)
        assert r.status_code == 401
        r = requests.post(url, json=listing, headers=dict(accept, Authorization=f"Bearer {analyst}"), timeout=10)
        assert r.status_code == 400
        # DNS rebinding: a foreign Host or Origin is refused.
        r = requests.post(url, json=init, headers=dict(accept, Authorization=f"Bearer {analyst}", Origin="http://evil.example"), timeout=10)
        assert r.status_code == 403
        r = requests.delete(url, headers=dict(accept, Authorization=f"Bearer {analyst}", **{"Mcp-Session-Id": session}), timeout=10)
        assert r.status_code == 200
        r = requests.post(url, json=listing, headers=dict(accept, Authorization=f"Bearer {analyst}", **{"Mcp-Session-Id": session}), timeout=10)
        assert r.status_code == 404
        assert proc.poll() is None
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert analyst.encode() not in err and viewer_key.encode() not in err
